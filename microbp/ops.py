"""The op table: the one place where every op of microbp is defined.

Each op states its forward value and its local derivative side by side:

    forward(a, b)            -> out
    backward(g, a, b, out)   -> (grad for a, grad for b)

where g is the upstream gradient (d loss / d out). The eager `Value` ops, the
pure-Python flat-array executor (pyexec.py) and the C executor (csrc/microbp.c,
whose op codes are generated from OPS below) all follow this table, in the same
operation order, so that every backend produces bit-identical doubles.

The math follows IEEE 754 and PyTorch float64: no Python exception escapes from
inside an op. log(0) = -inf, 1/0 = inf, (-8) ** 0.5 = nan, exp(1000) = inf.
"""
import math
from collections import namedtuple

inf = math.inf
nan = inf - inf     # the default nan of the hardware, as C's 0/0 and log(-1) give it
                    # (math.nan has the other sign bit on x86)

# ---------------------------------------------------------------------------
# IEEE-754 versions of the Python float operations that raise instead.
# Each returns exactly what the C library returns (Python's math module calls
# the same libm functions for every finite case).


def ieee_div(x, y):
    try:
        return x / y
    except ZeroDivisionError:          # x / +-0
        if x != x:
            return x                   # nan/0: the nan goes on, as in C
        if x == 0.0:
            return nan                 # 0/0
        return math.copysign(inf, x) * math.copysign(1.0, y)


def _odd_integer(y):
    return y == y and abs(y) != inf and y == math.floor(y) and math.fmod(y, 2.0) != 0.0


def ieee_pow(x, y):
    try:
        return math.pow(x, y)
    except ValueError:                 # 0 ** negative (a pole) or negative ** non-integer
        if x == 0.0:
            return math.copysign(inf, x) if _odd_integer(y) else inf
        return nan
    except OverflowError:
        return -inf if (x < 0.0 and _odd_integer(y)) else inf


def ieee_exp(x):
    try:
        return math.exp(x)
    except OverflowError:
        return inf


def ieee_log(x):
    try:
        return math.log(x)
    except ValueError:                 # log(+-0) = -inf, log(negative) = nan
        return -inf if x == 0.0 else nan


def sign(x):
    # sign(+-0) = 0 and sign(nan) = 0, like torch.sign
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0


# ---------------------------------------------------------------------------
# The ops. `a` and `b` are the input values, `out` the forward result,
# `g` the upstream gradient. Unary ops ignore `b`.

# leaf: a value with no inputs (a parameter, an input slot or a constant)

def add(a, b):                  return a + b
def add_grad(g, a, b, out):     return g, g                 # add distributes the gradient unchanged

def sub(a, b):                  return a - b
def sub_grad(g, a, b, out):     return g, -g

def mul(a, b):                  return a * b
def mul_grad(g, a, b, out):     return g * b, g * a         # multiply swaps in the other input

def div(a, b):                  return ieee_div(a, b)
def div_grad(g, a, b, out):     return ieee_div(g, b), -g * ieee_div(ieee_div(a, b), b)

def pow_(a, b):                 return ieee_pow(a, b)       # a ** b, both Values
def pow_grad(g, a, b, out):
    ga = 0.0 if b == 0.0 else g * (b * ieee_pow(a, b - 1.0))        # b a^(b-1)
    gb = g * (0.0 if (a == 0.0 and b >= 0.0) else out * ieee_log(a))  # a^b ln a
    return ga, gb

def powc(a, c):                 return ieee_pow(a, c)       # a ** c, c a constant
def powc_grad(g, a, c, out):    return (0.0 if c == 0.0 else g * (c * ieee_pow(a, c - 1.0))), 0.0

def neg(a, b):                  return -a
def neg_grad(g, a, b, out):     return -g, 0.0

def exp(a, b):                  return ieee_exp(a)
def exp_grad(g, a, b, out):     return g * out, 0.0         # exp' = exp

def log(a, b):                  return ieee_log(a)
def log_grad(g, a, b, out):     return ieee_div(g, a), 0.0  # log' = 1/x

def tanh(a, b):                 return math.tanh(a)
def tanh_grad(g, a, b, out):    return g * (1.0 - out * out), 0.0   # tanh' = 1 - t^2

def sigmoid(a, b):              return 1.0 / (1.0 + ieee_exp(-a))   # 1 + exp(-a) >= 1: never 0
def sigmoid_grad(g, a, b, out): return g * (1.0 - out) * out, 0.0   # s' = s (1 - s)

def relu(a, b):                 return 0.0 if a < 0.0 else a        # relu(nan) = nan, relu(-0) = -0
def relu_grad(g, a, b, out):    return (0.0 if a <= 0.0 else g), 0.0  # relu'(0) = 0

def abs_(a, b):                 return math.fabs(a)
def abs_grad(g, a, b, out):     return g * sign(a), 0.0


# ---------------------------------------------------------------------------
# The table. `code` is the op code stored in the flat node array (and handed
# to the C compiler as OP_<NAME>), `arity` the number of inputs, `grad_b`
# whether the second input receives a gradient (a constant exponent does not).

Op = namedtuple("Op", "code name arity grad_b forward backward")

OPS = (
    Op(0, "leaf", 0, False, None, None),
    Op(1, "const", 0, False, None, None),
    Op(2, "add", 2, True, add, add_grad),
    Op(3, "sub", 2, True, sub, sub_grad),
    Op(4, "mul", 2, True, mul, mul_grad),
    Op(5, "div", 2, True, div, div_grad),
    Op(6, "pow", 2, True, pow_, pow_grad),
    Op(7, "powc", 2, False, powc, powc_grad),
    Op(8, "neg", 1, False, neg, neg_grad),
    Op(9, "exp", 1, False, exp, exp_grad),
    Op(10, "log", 1, False, log, log_grad),
    Op(11, "tanh", 1, False, tanh, tanh_grad),
    Op(12, "sigmoid", 1, False, sigmoid, sigmoid_grad),
    Op(13, "relu", 1, False, relu, relu_grad),
    Op(14, "abs", 1, False, abs_, abs_grad),
    # lin: base + p0*q0 + p1*q1 + ..., added left to right. Never made by a
    # Value op: the tape recorder (tape.py, fuse_linear) fuses a chain of add
    # and mul nodes into one, with the very same roundings and the same order of
    # gradient contributions. Input a is the base; b is where its terms start in
    # the tape's ext[] array: ext[b] = k, then k pairs of node indices (p, q).
    Op(15, "lin", 1, False, None, None),
)

assert all(op.code == i for i, op in enumerate(OPS))
NUM_OPS = len(OPS)
NAMES = tuple(op.name for op in OPS)
ARITY = tuple(op.arity for op in OPS)
GRAD_B = tuple(op.grad_b for op in OPS)
FORWARD = tuple(op.forward for op in OPS)
BACKWARD = tuple(op.backward for op in OPS)

LEAF, CONST, ADD, SUB, MUL, DIV, POW, POWC, NEG, EXP, LOG, TANH, SIGMOID, RELU, ABS, LIN = range(NUM_OPS)


def c_macros():
    """The op codes as C preprocessor macros (OP_ADD=2, ...), for the C build."""
    return [("OP_" + op.name.upper(), str(op.code)) for op in OPS] + [("NUM_OPS", str(NUM_OPS))]
