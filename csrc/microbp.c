/*
 * microbp C core: run a recorded graph forward up its flat node array and
 * backward down it, with the rows of a batch as the lanes of each node.
 *
 * This file mirrors microbp/pyexec.py case by case: same formulas, same
 * operation order, same libm calls, so both give bit-identical doubles.
 * Build with -ffp-contract=off and never -ffast-math (microbp/_cbuild.py).
 * The op codes OP_<NAME>, NUM_OPS and MBP_ARITY come from microbp/ops.py.
 */
#include <math.h>
#include <string.h>
#include "microbp.h"

#if !defined(OP_ADD) || !defined(MBP_ARITY)
#error "the op codes come from microbp/ops.py: build through microbp/_cbuild.py"
#endif

static const int arity[NUM_OPS] = MBP_ARITY;

int mbp_num_ops(void) { return NUM_OPS; }
int mbp_arity(int op) { return (op >= 0 && op < NUM_OPS) ? arity[op] : -1; }

/* ------------------------------------------------------------------------ */
/* the rules of a tape, checked before any sweep (pyexec.check is the twin) */

static int check_tape(const int32_t *op, const int32_t *a, const int32_t *b,
                      const uint8_t *vary, const int64_t *off,
                      int64_t n, int64_t nr, int64_t nval,
                      const int32_t *ext, int64_t next) {
    if (n <= 0 || nr <= 0 || nval < 0 || next < 0) return MBP_ESIZE;
    int64_t end = 0;
    for (int64_t i = 0; i < n; i++) {
        const int32_t o = op[i];
        if (o < 0 || o >= NUM_OPS) return MBP_EOP;
        const int k = arity[o];
        if (k >= 1 && (a[i] < 0 || a[i] >= i)) return MBP_EINDEX;
        if (k == 2 && (b[i] < 0 || b[i] >= i)) return MBP_EINDEX;
        if (vary[i] > 1) return MBP_EVARY;
        int expect = k >= 1 ? (vary[a[i]] | (k == 2 ? vary[b[i]] : 0)) : vary[i];
        if (o == OP_LIN) {                    /* ext[b] = k, then k pairs (p, q) */
            const int64_t s = b[i];
            if (s < 0 || s >= next || ext[s] < 1 || ext[s] > (next - s - 1) / 2)
                return MBP_EINDEX;
            for (int64_t t = s + 1; t <= s + 2 * (int64_t)ext[s]; t++) {
                if (ext[t] < 0 || ext[t] >= i) return MBP_EINDEX;
                expect |= vary[ext[t]];
            }
        }
        if (vary[i] != expect) return MBP_EVARY;
        if (off[i] != end) return MBP_ELAYOUT;
        const int64_t width = vary[i] ? nr : 1;
        if (width > nval - end) return MBP_ESIZE;       /* no overflow: end <= nval */
        end += width;
    }
    return MBP_OK;
}

/* Instantiate BODY once per stride pattern of the inputs, so that each loop
 * knows at compile time whether input a (SA) and input b (SB) vary by lane. */
#define STRIDES(...)                                                \
    if (sa && sb)  { const int64_t SA = 1, SB = 1; __VA_ARGS__ }    \
    else if (sa)   { const int64_t SA = 1, SB = 0; __VA_ARGS__ }    \
    else if (sb)   { const int64_t SA = 0, SB = 1; __VA_ARGS__ }    \
    else           { const int64_t SA = 0, SB = 0; __VA_ARGS__ }

/* ------------------------------------------------------------------------ */
/* forward: out lanes = f(x lanes, y lanes)                                   */

#define MAP(...) STRIDES(                                        \
    for (int64_t r = 0; r < w; r++) {                             \
        const double x = A[r * SA], y = B[r * SB]; (void)y;       \
        O[r] = (__VA_ARGS__);                                      \
    })

/* lin: acc = base, then acc = acc + p*q for each term (a fused chain of add
 * and mul nodes, with the same roundings: -ffp-contract=off, no fma) */
static void lin_forward(double *O, int64_t w, const double *val, const int64_t *off,
                        const uint8_t *vary, int32_t base, const int32_t *t, int32_t k) {
    const double *X = val + off[base];
    if (vary[base]) for (int64_t r = 0; r < w; r++) O[r] = X[r];
    else            for (int64_t r = 0; r < w; r++) O[r] = X[0];
    for (int32_t j = 0; j < k; j++) {
        const double *A = val + off[t[2 * j]], *B = val + off[t[2 * j + 1]];
        const int sa = vary[t[2 * j]], sb = vary[t[2 * j + 1]];
        STRIDES(for (int64_t r = 0; r < w; r++) O[r] = O[r] + A[r * SA] * B[r * SB];)
    }
}

int mbp_forward(double *val, int64_t nval,
                const int32_t *op, const int32_t *a, const int32_t *b,
                const uint8_t *vary, const int64_t *off, int64_t n, int64_t nr,
                const int32_t *ext, int64_t next) {
    const int e = check_tape(op, a, b, vary, off, n, nr, nval, ext, next);
    if (e) return e;
    for (int64_t i = 0; i < n; i++) {
        const int o = op[i];
        if (o == OP_LEAF || o == OP_CONST) continue;   /* filled by the caller */
        const int64_t w = vary[i] ? nr : 1;            /* lanes of this node */
        if (o == OP_LIN) {
            lin_forward(val + off[i], w, val, off, vary, a[i], ext + b[i] + 1, ext[b[i]]);
            continue;
        }
        const int bin = arity[o] == 2;
        const double *A = val + off[a[i]];
        const double *B = bin ? val + off[b[i]] : A;
        const int sa = vary[a[i]], sb = bin ? vary[b[i]] : sa;
        double *O = val + off[i];
        switch (o) {
        case OP_ADD:     MAP(x + y); break;
        case OP_SUB:     MAP(x - y); break;
        case OP_MUL:     MAP(x * y); break;
        case OP_DIV:     MAP(x / y); break;
        case OP_POW:     MAP(pow(x, y)); break;
        case OP_POWC:    MAP(pow(x, y)); break;
        case OP_NEG:     MAP(-x); break;
        case OP_EXP:     MAP(exp(x)); break;
        case OP_LOG:     MAP(log(x)); break;
        case OP_TANH:    MAP(tanh(x)); break;
        case OP_SIGMOID: MAP(1.0 / (1.0 + exp(-x))); break;
        case OP_RELU:    MAP(x < 0.0 ? 0.0 : x); break;
        case OP_ABS:     MAP(fabs(x)); break;
        }
    }
    return MBP_OK;
}

/* ------------------------------------------------------------------------ */
/* backward: input adjoint += g * local derivative, lane by lane; an input
 * that does not vary gets the sum over lanes: 4 running sums started at -0.0
 * (the exact additive identity), lane r into sum r % 4.                     */

#define LANE(r)                                                   \
    const double x = A[(r) * SA], y = B[(r) * SB];                \
    const double g = G[r], o = O[r];                              \
    (void)x; (void)y; (void)g; (void)o

#define ACC(D, SD, expr)                                                   \
    if (SD) {                                                              \
        for (int64_t r = 0; r < w; r++) { LANE(r); D[r] += (expr); }       \
    } else {                                                               \
        double s0 = -0.0, s1 = -0.0, s2 = -0.0, s3 = -0.0;                 \
        int64_t r = 0;                                                     \
        for (; r + 4 <= w; r += 4) {                                       \
            { LANE(r);     s0 += (expr); }  { LANE(r + 1); s1 += (expr); } \
            { LANE(r + 2); s2 += (expr); }  { LANE(r + 3); s3 += (expr); } \
        }                                                                  \
        for (; r < w; r++) {                                               \
            LANE(r); const double c = (expr);                              \
            if ((r & 3) == 0) s0 += c; else if ((r & 3) == 1) s1 += c; else s2 += c; \
        }                                                                  \
        D[0] += (s0 + s1) + (s2 + s3);                                     \
    }

#define GRAD2(ga, gb) STRIDES(ACC(DA, SA, ga) ACC(DB, SB, gb))
#define GRAD1(ga)     STRIDES(ACC(DA, SA, ga))

/* the sum of w lanes: 4 running sums from -0.0, lane r into sum r % 4 */
static double lane_sum(const double *G, int64_t w) {
    double s0 = -0.0, s1 = -0.0, s2 = -0.0, s3 = -0.0;
    int64_t r = 0;
    for (; r + 4 <= w; r += 4) { s0 += G[r]; s1 += G[r + 1]; s2 += G[r + 2]; s3 += G[r + 3]; }
    for (; r < w; r++) {
        if ((r & 3) == 0) s0 += G[r]; else if ((r & 3) == 1) s1 += G[r]; else s2 += G[r];
    }
    return (s0 + s1) + (s2 + s3);
}

/* lin backward: the contributions of the unfused adds and muls, in the order
 * their sweep makes them: terms last to first, the base just before term 0 */
static void lin_backward(double *adj, const double *val, const int64_t *off,
                         const uint8_t *vary, int64_t i, int64_t w,
                         int32_t base, const int32_t *t, int32_t k) {
    const double *G = adj + off[i], *O = G;
    for (int32_t j = k - 1; j >= 0; j--) {
        if (j == 0) {                                     /* add: passes g on */
            double *D = adj + off[base];
            if (vary[base]) for (int64_t r = 0; r < w; r++) D[r] += G[r];
            else D[0] += lane_sum(G, w);
        }
        const int32_t p = t[2 * j], q = t[2 * j + 1];
        const double *A = val + off[p], *B = val + off[q];
        double *DA = adj + off[p], *DB = adj + off[q];
        const int sa = vary[p], sb = vary[q];
        if (sa || sb) {                                   /* the product varies */
            STRIDES(ACC(DA, SA, g * y) ACC(DB, SB, g * x))  /* mul swaps in the other */
        } else {                                          /* one product, one gradient */
            const double gm = lane_sum(G, w);
            DA[0] += gm * B[0];
            DB[0] += gm * A[0];
        }
    }
}

int mbp_backward(double *adj, const double *val, int64_t nval,
                 const int32_t *op, const int32_t *a, const int32_t *b,
                 const uint8_t *vary, const int64_t *off, int64_t n, int64_t nr,
                 const int32_t *ext, int64_t next) {
    const int e = check_tape(op, a, b, vary, off, n, nr, nval, ext, next);
    if (e) return e;
    const int64_t used = off[n - 1] + (vary[n - 1] ? nr : 1);
    for (int64_t k = 0; k < used; k++) adj[k] = -0.0;  /* the exact additive identity */
    /* seed: d(sum over rows of the root) / d root: 1 per lane, or nr for a
     * root that is the same in every row */
    if (vary[n - 1]) for (int64_t r = 0; r < nr; r++) adj[off[n - 1] + r] = 1.0;
    else adj[off[n - 1]] = (double)nr;
    for (int64_t i = n - 1; i >= 0; i--) {
        const int op_i = op[i];
        if (op_i == OP_LEAF || op_i == OP_CONST) continue;
        const int64_t w = vary[i] ? nr : 1;
        if (op_i == OP_LIN) {
            lin_backward(adj, val, off, vary, i, w, a[i], ext + b[i] + 1, ext[b[i]]);
            continue;
        }
        const int bin = arity[op_i] == 2;
        const double *A = val + off[a[i]];
        const double *B = bin ? val + off[b[i]] : A;
        double *DA = adj + off[a[i]];
        double *DB = bin ? adj + off[b[i]] : DA;
        const int sa = vary[a[i]], sb = bin ? vary[b[i]] : sa;
        const double *O = val + off[i];
        const double *G = adj + off[i];
        switch (op_i) {
        case OP_ADD:     GRAD2(g, g); break;
        case OP_SUB:     GRAD2(g, -g); break;
        case OP_MUL:     GRAD2(g * y, g * x); break;
        case OP_DIV:     GRAD2(g / y, -g * ((x / y) / y)); break;
        case OP_POW:     GRAD2(y == 0.0 ? 0.0 : g * (y * pow(x, y - 1.0)),
                               g * ((x == 0.0 && y >= 0.0) ? 0.0 : o * log(x))); break;
        case OP_POWC:    GRAD1(y == 0.0 ? 0.0 : g * (y * pow(x, y - 1.0))); break;
        case OP_NEG:     GRAD1(-g); break;
        case OP_EXP:     GRAD1(g * o); break;
        case OP_LOG:     GRAD1(g / x); break;
        case OP_TANH:    GRAD1(g * (1.0 - o * o)); break;
        case OP_SIGMOID: GRAD1(g * (1.0 - o) * o); break;
        case OP_RELU:    GRAD1(x <= 0.0 ? 0.0 : g); break;
        case OP_ABS:     GRAD1(g * (x > 0.0 ? 1.0 : x < 0.0 ? -1.0 : 0.0)); break;
        }
    }
    return MBP_OK;
}

/* ------------------------------------------------------------------------ */
/* moving parameters and batches in and out of a tape                        */

static int check_nodes(const int64_t *off, int64_t n, const int32_t *nodes, int64_t k,
                       int64_t width, int64_t nval) {
    if (n < 0 || k < 0 || width <= 0) return MBP_ESIZE;
    for (int64_t j = 0; j < k; j++) {
        if (nodes[j] < 0 || nodes[j] >= n) return MBP_ESLOT;
        const int64_t o = off[nodes[j]];
        if (o < 0 || o > nval - width) return MBP_ESLOT;
    }
    return MBP_OK;
}

static int check_slots(const int32_t *slots, int64_t k, int64_t nslots) {
    if (k < 0 || nslots < 0) return MBP_ESIZE;
    for (int64_t j = 0; j < k; j++)
        if (slots[j] < 0 || slots[j] >= nslots) return MBP_ESLOT;
    return MBP_OK;
}

int mbp_gather(double *val, int64_t nval, const int64_t *off, int64_t n,
               const int32_t *nodes, const int32_t *slots, int64_t k,
               const double *src, int64_t nsrc) {
    int e = check_nodes(off, n, nodes, k, 1, nval);
    if (!e) e = check_slots(slots, k, nsrc);
    if (e) return e;
    for (int64_t j = 0; j < k; j++) val[off[nodes[j]]] = src[slots[j]];
    return MBP_OK;
}

int mbp_scatter_add(double *dst, int64_t ndst, const double *adj, int64_t nadj,
                    const int64_t *off, int64_t n,
                    const int32_t *nodes, const int32_t *slots, int64_t k) {
    int e = check_nodes(off, n, nodes, k, 1, nadj);
    if (!e) e = check_slots(slots, k, ndst);
    if (e) return e;
    for (int64_t j = 0; j < k; j++) dst[slots[j]] += adj[off[nodes[j]]];
    return MBP_OK;
}

int mbp_load_rows(double *val, int64_t nval, const int64_t *off, int64_t n,
                  const int32_t *nodes, int64_t k, const double *rows, int64_t nrows, int64_t nr) {
    const int e = (nr <= 0 || k < 0 || nrows < 0 || (k > 0 && nr > nrows / k))
        ? MBP_ESIZE : check_nodes(off, n, nodes, k, nr, nval);
    if (e) return e;
    for (int64_t j = 0; j < k; j++) {
        double *lanes = val + off[nodes[j]];
        for (int64_t r = 0; r < nr; r++) lanes[r] = rows[r * k + j];
    }
    return MBP_OK;
}

/* ------------------------------------------------------------------------ */
/* optimizers (optim.py holds the Python twins)                               */

int mbp_sgd(double *data, const double *grad, int64_t nslots,
            const int32_t *slots, int64_t k, double lr) {
    const int e = check_slots(slots, k, nslots);
    if (e) return e;
    for (int64_t j = 0; j < k; j++) {
        const int32_t s = slots[j];
        data[s] = data[s] - lr * grad[s];
    }
    return MBP_OK;
}

int mbp_momentum(double *data, double *vel, const double *grad, int64_t nslots,
                 int64_t nstate, const int32_t *slots, int64_t k, double lr, double mu) {
    const int e = k > nstate ? MBP_ESIZE : check_slots(slots, k, nslots);
    if (e) return e;
    for (int64_t j = 0; j < k; j++) {
        const int32_t s = slots[j];
        vel[j] = mu * vel[j] - lr * grad[s];          /* v <- mu v - lr g */
        data[s] = data[s] + vel[j];                    /* w <- w + v */
    }
    return MBP_OK;
}

int mbp_adam(double *data, double *m, double *v, const double *grad, int64_t nslots,
             int64_t nstate, const int32_t *slots, int64_t k, double lr, double beta1, double beta2,
             double eps, double bc1, double bc2) {
    const int e = k > nstate ? MBP_ESIZE : check_slots(slots, k, nslots);
    if (e) return e;
    for (int64_t j = 0; j < k; j++) {
        const int32_t s = slots[j];
        const double gr = grad[s];
        m[j] = beta1 * m[j] + (1.0 - beta1) * gr;
        v[j] = beta2 * v[j] + (1.0 - beta2) * (gr * gr);
        const double mhat = m[j] / bc1, vhat = v[j] / bc2;   /* bias correction */
        data[s] = data[s] - lr * mhat / (sqrt(vhat) + eps);
    }
    return MBP_OK;
}

int mbp_fill(double *dst, int64_t ndst, const int32_t *slots, int64_t k, double value) {
    const int e = check_slots(slots, k, ndst);
    if (e) return e;
    for (int64_t j = 0; j < k; j++) dst[slots[j]] = value;
    return MBP_OK;
}

/* ------------------------------------------------------------------------ */
/* detect_anomaly (anomaly.py): where the first nan or inf is                 */

int64_t mbp_first_nonfinite(const double *x, int64_t n, int64_t start, int64_t stop) {
    if (start < 0 || stop < start || stop > n) return -2;
    for (int64_t k = start; k < stop; k++)
        if (!isfinite(x[k])) return k;
    return -1;
}
