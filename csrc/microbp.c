/*
 * microbp C core: run a recorded graph forward up its flat node array,
 * backward down it, and its tangents (forward mode) up it, with the rows of a
 * batch as the lanes of each node.
 *
 * The per-op arithmetic is not written here: csrc/ops_generated.h is
 * generated from the op table (microbp/ops.py), the same rows the Python
 * executor (microbp/pyexec.py) compiles its kernels from. This file holds the
 * lane loops those kernels run in, the tape check, the fused lin node, and
 * the moves of parameters and batches in and out of a tape. Same formulas,
 * same operation order, same libm calls as the Python side: bit-identical
 * doubles. Build with -ffp-contract=off and never -ffast-math.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "microbp.h"

/* sign(+-0) = sign(nan) = 0, like torch.sign (the op table's sign()) */
static inline double mbp_sign(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0); }

/* The lane loops. Inlined into each op's case with the op's scalar function,
 * and once per stride pattern (an input that does not vary is read at lane 0),
 * so that the compiler sees plain loops over arrays. */
#if defined(__GNUC__)
#define LANE_LOOP static inline __attribute__((always_inline))
#else
#define LANE_LOOP static inline
#endif

typedef double (*forward_fn)(double a, double b);
typedef double (*local_fn)(double u, double a, double b, double out);

LANE_LOOP void forward_strided(double *out, int64_t w, const double *a, int64_t sa,
                               const double *b, int64_t sb, forward_fn f) {
    for (int64_t r = 0; r < w; r++) out[r] = f(a[r * sa], b[r * sb]);
}

/* out[r] = f(a[r], b[r]) for the w lanes of a node */
LANE_LOOP void forward_lanes(double *out, int64_t w, const double *a, int va,
                             const double *b, int vb, forward_fn f) {
    if (va && vb)  forward_strided(out, w, a, 1, b, 1, f);
    else if (va)   forward_strided(out, w, a, 1, b, 0, f);
    else if (vb)   forward_strided(out, w, a, 0, b, 1, f);
    else           forward_strided(out, w, a, 0, b, 0, f);
}

/* the sum of w lanes: 4 running sums from -0.0 (the exact additive
 * identity), lane r into sum r % 4, then (s0 + s1) + (s2 + s3) */
LANE_LOOP double lane_sum_strided(int64_t w, const double *g, const double *out,
                                  const double *a, int64_t sa, const double *b, int64_t sb,
                                  local_fn f) {
    double s0 = -0.0, s1 = -0.0, s2 = -0.0, s3 = -0.0;
    int64_t r = 0;
    for (; r + 4 <= w; r += 4) {
        s0 += f(g[r], a[r * sa], b[r * sb], out[r]);
        s1 += f(g[r + 1], a[(r + 1) * sa], b[(r + 1) * sb], out[r + 1]);
        s2 += f(g[r + 2], a[(r + 2) * sa], b[(r + 2) * sb], out[r + 2]);
        s3 += f(g[r + 3], a[(r + 3) * sa], b[(r + 3) * sb], out[r + 3]);
    }
    if (r < w) s0 += f(g[r], a[r * sa], b[r * sb], out[r]);
    if (r + 1 < w) s1 += f(g[r + 1], a[(r + 1) * sa], b[(r + 1) * sb], out[r + 1]);
    if (r + 2 < w) s2 += f(g[r + 2], a[(r + 2) * sa], b[(r + 2) * sb], out[r + 2]);
    return (s0 + s1) + (s2 + s3);
}

LANE_LOOP void backward_strided(double *d, int vd, int64_t w, const double *g,
                                const double *out, const double *a, int64_t sa,
                                const double *b, int64_t sb, local_fn f) {
    if (vd) for (int64_t r = 0; r < w; r++) d[r] += f(g[r], a[r * sa], b[r * sb], out[r]);
    else d[0] += lane_sum_strided(w, g, out, a, sa, b, sb, f);
}

/* d[r] += f(g[r], a[r], b[r], out[r]) lane by lane, or d[0] += their lane sum
 * when the input d belongs to does not vary */
LANE_LOOP void backward_lanes(double *d, int vd, int64_t w, const double *g, const double *out,
                              const double *a, int va, const double *b, int vb, local_fn f) {
    if (va && vb)  backward_strided(d, vd, w, g, out, a, 1, b, 1, f);
    else if (va)   backward_strided(d, vd, w, g, out, a, 1, b, 0, f);
    else if (vb)   backward_strided(d, vd, w, g, out, a, 0, b, 1, f);
    else           backward_strided(d, vd, w, g, out, a, 0, b, 0, f);
}

LANE_LOOP void tangent_strided(double *tout, int64_t w, const double *ta, int ha,
                               const double *tb, int hb, const double *out,
                               const double *a, int64_t sa, const double *b, int64_t sb,
                               local_fn fa, local_fn fb) {
    for (int64_t r = 0; r < w; r++) {
        const double x = a[r * sa], y = b[r * sb];
        if (ha && hb) tout[r] = fa(ta[r], x, y, out[r]) + fb(tb[r], x, y, out[r]);
        else if (ha)  tout[r] = fa(ta[r], x, y, out[r]);
        else          tout[r] = fb(tb[r], x, y, out[r]);
    }
}

/* tout[r] = ta[r] * d out/d a (+ tb[r] * d out/d b), over the inputs that
 * carry a tangent (ha, hb: those that vary); an input without one adds nothing */
LANE_LOOP void tangent_lanes(double *tout, int64_t w, const double *ta, int ha,
                             const double *tb, int hb, const double *out,
                             const double *a, int va, const double *b, int vb,
                             local_fn fa, local_fn fb) {
    if (va && vb)  tangent_strided(tout, w, ta, ha, tb, hb, out, a, 1, b, 1, fa, fb);
    else if (va)   tangent_strided(tout, w, ta, ha, tb, hb, out, a, 1, b, 0, fa, fb);
    else if (vb)   tangent_strided(tout, w, ta, ha, tb, hb, out, a, 0, b, 1, fa, fb);
}

#include "ops_generated.h"

int mbp_num_ops(void) { return NUM_OPS; }
int mbp_arity(int op) { return (op >= 0 && op < NUM_OPS) ? op_arity[op] : -1; }

/* ------------------------------------------------------------------------ */
/* the rules of a tape, checked before any sweep (tapeformat.check is the twin) */

static int check_tape(const int32_t *op, const int32_t *in_a, const int32_t *in_b,
                      const uint8_t *varies, const int64_t *offset,
                      int64_t nnodes, int64_t nrows, int64_t nval,
                      const int32_t *terms, int64_t nterms) {
    if (nnodes <= 0 || nrows <= 0 || nval < 0 || nterms < 0) return MBP_ESIZE;
    int64_t end = 0;
    for (int64_t i = 0; i < nnodes; i++) {
        const int32_t o = op[i];
        if (o < 0 || o >= NUM_OPS) return MBP_EOP;
        const int k = op_arity[o];
        if (k >= 1 && (in_a[i] < 0 || in_a[i] >= i)) return MBP_EINDEX;
        if (k == 2 && (in_b[i] < 0 || in_b[i] >= i)) return MBP_EINDEX;
        if (varies[i] > 1) return MBP_EVARY;
        int expect = k >= 1 ? (varies[in_a[i]] | (k == 2 ? varies[in_b[i]] : 0)) : varies[i];
        if (o == OP_LIN) {                    /* terms[s] = k, then k pairs (p, q) */
            const int64_t s = in_b[i];
            if (s < 0 || s >= nterms || terms[s] < 1 || terms[s] > (nterms - s - 1) / 2)
                return MBP_EINDEX;
            for (int64_t t = s + 1; t <= s + 2 * (int64_t)terms[s]; t++) {
                if (terms[t] < 0 || terms[t] >= i) return MBP_EINDEX;
                expect |= varies[terms[t]];
            }
        }
        if (varies[i] != expect) return MBP_EVARY;
        if (offset[i] != end) return MBP_ELAYOUT;
        const int64_t width = varies[i] ? nrows : 1;
        if (width > nval - end) return MBP_ESIZE;       /* no overflow: end <= nval */
        end += width;
    }
    return MBP_OK;
}

/* ------------------------------------------------------------------------ */
/* lin: acc = base, then acc = acc + p*q for each term: a fused chain of add
 * and mul nodes with the same roundings (-ffp-contract=off, no fma).
 * forward, backward and tangent side by side.                               */

LANE_LOOP void axpy_strided(double *out, int64_t w, const double *p, int64_t sp,
                            const double *q, int64_t sq) {
    for (int64_t r = 0; r < w; r++) out[r] = out[r] + p[r * sp] * q[r * sq];
}

static void lin_forward(double *out, int64_t w, const double *val, const int64_t *offset,
                        const uint8_t *varies, int32_t base, const int32_t *t, int32_t k) {
    const double *acc = val + offset[base];
    if (w == 1) {                       /* one lane: the sum stays in a register */
        double sum = acc[0];
        for (int32_t j = 0; j < k; j++) sum = sum + val[offset[t[2 * j]]] * val[offset[t[2 * j + 1]]];
        out[0] = sum;
        return;
    }
    if (varies[base]) for (int64_t r = 0; r < w; r++) out[r] = acc[r];
    else              for (int64_t r = 0; r < w; r++) out[r] = acc[0];
    for (int32_t j = 0; j < k; j++) {
        const int32_t p = t[2 * j], q = t[2 * j + 1];
        const double *P = val + offset[p], *Q = val + offset[q];
        if (varies[p] && varies[q]) axpy_strided(out, w, P, 1, Q, 1);
        else if (varies[p])         axpy_strided(out, w, P, 1, Q, 0);
        else if (varies[q])         axpy_strided(out, w, P, 0, Q, 1);
        else                        axpy_strided(out, w, P, 0, Q, 0);
    }
}

/* 1 when term j of a lin is p_j * p_j with p_j = p_0 + j (an L2 penalty
 * over parameters in node order): with a lin that does not vary, those are
 * k leaves or constants one after another, one double each, so their values
 * and adjoints are k doubles in a row (node numbers are below 2^31, so
 * p_0 + j < 2^32: no wrap) */
static int squares_in_a_row(const int32_t *t, int32_t k) {
    const uint32_t p0 = (uint32_t)t[0];
    uint32_t diff = 0;
    for (int64_t j = 0; j < k; j++)
        diff |= ((uint32_t)t[2 * j] ^ (p0 + (uint32_t)j)) | ((uint32_t)t[2 * j + 1] ^ (p0 + (uint32_t)j));
    return diff == 0;
}

/* the contributions of the unfused adds and muls, in the order their sweep
 * makes them: terms last to first, the base just before term 0 */
static void lin_backward(double *adj, const double *val, const int64_t *offset,
                         const uint8_t *varies, int64_t i, int64_t w,
                         int32_t base, const int32_t *t, int32_t k) {
    const double *g = adj + offset[i];
    const double gsum = lane_sum_strided(w, g, g, g, 1, g, 1, add_grad_a);   /* g is final */
    if (!varies[i]) {       /* nothing in it varies (check_tape): one gradient per input */
        if (squares_in_a_row(t, k)) {       /* an L2 penalty over parameters in order */
            const double *v = val + offset[t[0]];
            double *d = adj + offset[t[0]];
            for (int64_t j = k - 1; j >= 1; j--) {        /* k - 1 distinct adjoints */
                const double da = mul_grad_a(gsum, v[j], v[j], 0.0);
                d[j] = (d[j] + da) + mul_grad_b(gsum, v[j], v[j], 0.0);
            }
            adj[offset[base]] += gsum;                    /* add: passes g on */
            const double da = mul_grad_a(gsum, v[0], v[0], 0.0);
            d[0] = (d[0] + da) + mul_grad_b(gsum, v[0], v[0], 0.0);
            return;
        }
        for (int32_t j = k - 1; j >= 0; j--) {
            if (j == 0) adj[offset[base]] += gsum;    /* add: passes g on */
            const int32_t p = t[2 * j], q = t[2 * j + 1];
            const double x = val[offset[p]], y = val[offset[q]];
            const double da = mul_grad_a(gsum, x, y, 0.0), db = mul_grad_b(gsum, x, y, 0.0);
            double *dp = adj + offset[p];
            if (p == q) {                 /* p * p (an L2 term): both additions in a */
                *dp = (*dp + da) + db;    /* register, one load and one store */
            } else {
                *dp += da;
                adj[offset[q]] += db;
            }
        }
        return;
    }
    for (int32_t j = k - 1; j >= 0; j--) {
        if (j == 0)                                   /* add: passes g on */
            backward_lanes(adj + offset[base], varies[base], w, g, g, g, 1, g, 1, add_grad_a);
        const int32_t p = t[2 * j], q = t[2 * j + 1];
        const double *P = val + offset[p], *Q = val + offset[q];
        const int vp = varies[p], vq = varies[q];
        if (vp || vq) {                               /* the product varies */
            backward_lanes(adj + offset[p], vp, w, g, g, P, vp, Q, vq, mul_grad_a);
            backward_lanes(adj + offset[q], vq, w, g, g, P, vp, Q, vq, mul_grad_b);
        } else {                                      /* one product, one gradient */
            adj[offset[p]] += mul_grad_a(gsum, P[0], Q[0], 0.0);
            adj[offset[q]] += mul_grad_b(gsum, P[0], Q[0], 0.0);
        }
    }
}

/* tangent of acc + p*q + ...: the unfused nodes' tangents in their order; a
 * mul of two non-varying nodes has no tangent and the add passes acc's on */
static void lin_tangent(double *tout, int64_t w, const double *val, const double *tan,
                        const int64_t *offset, const uint8_t *varies,
                        int32_t base, const int32_t *t, int32_t k) {
    int has = varies[base];
    if (has) for (int64_t r = 0; r < w; r++) tout[r] = tan[offset[base] + r];
    for (int32_t j = 0; j < k; j++) {
        const int32_t p = t[2 * j], q = t[2 * j + 1];
        const int vp = varies[p], vq = varies[q];
        if (!vp && !vq) continue;
        const double *P = val + offset[p], *Q = val + offset[q];
        const double *TP = tan + offset[p], *TQ = tan + offset[q];
        for (int64_t r = 0; r < w; r++) {
            const double x = P[vp ? r : 0], y = Q[vq ? r : 0];
            double m;
            if (vp && vq) m = mul_tangent_a(TP[r], x, y, 0.0) + mul_tangent_b(TQ[r], x, y, 0.0);
            else if (vp)  m = mul_tangent_a(TP[r], x, y, 0.0);
            else          m = mul_tangent_b(TQ[r], x, y, 0.0);
            tout[r] = has ? add_tangent_a(tout[r], 0.0, 0.0, 0.0) + m : m;
        }
        has = 1;
    }
}


/* ------------------------------------------------------------------------ */
/* layers: `count` consecutive lin nodes over the same inputs (a layer of an
 * MLP, recognised by the recorder, tape.py). Node j of a layer computes
 * base_j + w_j0 * x_0 + w_j1 * x_1 + ... with bases and weights that do not
 * vary and the same varying inputs x_t (strictly increasing node indices).
 * The kernels keep a tile of outputs x lanes in registers while they walk
 * the terms in order, so that each accumulator sees the very additions of
 * lin_forward, and backward makes the contributions of lin_backward in the
 * same order into each adjoint: bit-identical, fewer loads and stores.      */

static int check_layers(const int32_t *op, const int32_t *in_a, const int32_t *in_b,
                        const uint8_t *varies, int64_t nnodes,
                        const int32_t *terms, const int32_t *layers, int64_t nlayers) {
    if (nlayers < 0) return MBP_ESIZE;
    int64_t end = 0;
    for (int64_t L = 0; L < nlayers; L++) {
        const int64_t first = layers[2 * L], count = layers[2 * L + 1];
        if (first < end || count < 1 || count > nnodes - first || op[first] != OP_LIN)
            return MBP_ELAYER;
        end = first + count;
        const int32_t *t0 = terms + in_b[first] + 1;      /* checked by check_tape */
        const int32_t k = terms[in_b[first]];
        for (int64_t i = first; i < end; i++) {
            if (op[i] != OP_LIN || terms[in_b[i]] != k || varies[in_a[i]]) return MBP_ELAYER;
            const int32_t *t = terms + in_b[i] + 1;
            for (int32_t j = 0; j < k; j++) {
                if (varies[t[2 * j]] || !varies[t[2 * j + 1]] || t[2 * j + 1] != t0[2 * j + 1])
                    return MBP_ELAYER;
                if (j > 0 && t[2 * j + 1] <= t[2 * j - 1]) return MBP_ELAYER;
            }
        }
    }
    return MBP_OK;
}

/* The kernels come in three variants, chosen at run time by what the CPU has
 * (no -march flag: wheels stay portable): AVX-512 (tiles of 8 lanes x 16
 * outputs or inputs in zmm registers, a 4-lane tile at the edge; weight sums
 * 8 outputs x 6 inputs at a time), AVX2 and the baseline (tiles of 4 lanes x
 * 8; weight sums 4 outputs x 3 inputs at a time). Every variant does the very
 * IEEE operations of lin_forward and lin_backward, one rounding per mul and
 * per add, never fused (-ffp-contract=off): the same bits. Vectors only widen
 * what is independent: lanes, outputs, inputs; never a sum's association.
 * MBP_LAYERS_MAX=0 or 1 caps the choice at the baseline or AVX2 (a test
 * builds such cores to run the variants this CPU would not choose);
 * MBP_NO_CLONES builds the baseline alone. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(MBP_NO_CLONES)
#define MBP_LAYER_VARIANTS 1
#endif
#ifndef MBP_LAYERS_MAX
#define MBP_LAYERS_MAX 2
#endif

enum { TJ_MAX = 16,       /* outputs (forward) or inputs (backward) of a tile, at most */
       TS_WIDE = 6,       /* inputs per weight-sum tile, 8 outputs (AVX-512) */
       TS_NARROW = 3 };   /* inputs per weight-sum tile, 4 outputs */

typedef double lanes4 __attribute__((vector_size(32)));
typedef double lanes8 __attribute__((vector_size(64)));
#if defined(__GNUC__) && !defined(__clang__)
#define UNROLL _Pragma("GCC unroll 16")               /* keeps a tile in registers */
#else
#define UNROLL
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"      /* static functions: no ABI to keep */
#endif

LANE_LOOP lanes4 load4(const double *p) { lanes4 v; memcpy(&v, p, sizeof v); return v; }
LANE_LOOP void store4(double *p, const lanes4 *v) { memcpy(p, v, sizeof *v); }
LANE_LOOP lanes4 splat4(double x) { lanes4 v = {x, x, x, x}; return v; }
LANE_LOOP lanes8 load8(const double *p) { lanes8 v; memcpy(&v, p, sizeof v); return v; }
LANE_LOOP void store8(double *p, const lanes8 *v) { memcpy(p, v, sizeof *v); }
LANE_LOOP lanes8 splat8(double x) {     /* not {x, x, ...}: GCC 12 builds that lane by lane */
    double t[8];
    for (int i = 0; i < 8; i++) t[i] = x;
    return load8(t);
}

/* The register tiles, once for 4 lanes (lanes4: one AVX2 register, or two
 * SSE2 ones) and once for 8 (lanes8: one AVX-512 register), by LAYER_TILES:
 *
 * layer_tile_forward<N>: out_j[r0 + r] = base_j + sum over t of w[t][j] *
 * x_t[r0 + r] for a tile of tj outputs (a constant: 4, 8 or 16) and N lanes
 * held in tj registers, the terms in order;
 *
 * layer_tile_backward<N>: adj_x_t[r0 + r] += g_j[r0 + r] * w[j][t] for j =
 * count-1 down to 0 (the inputs' contributions in the order the unfused
 * sweep makes them), w[j][t] at w[j * ldw + t], for tj inputs and N lanes;
 *
 * layer_tile_sums<N>: the weight sums of N outputs and TS inputs at once,
 * sums[j * lds + t] = the sum over r of g_j[r] * x_t[r] (mul_grad_a) as
 * lane_sum_strided makes it: lane r into running sum r % 4, each from -0.0,
 * then (s0 + s1) + (s2 + s3). gt holds g transposed (row r: g_0[r] ..
 * g_N-1[r]), so that each lane of a vector is one output: four accumulators
 * per input (one per residue r % 4), finished lane by lane; no horizontal
 * sums. nj outputs and ns inputs of the tile are real. */
#define LAYER_TILES(N, TS)                                                                   \
LANE_LOOP void layer_tile_forward##N(double *const *out, int64_t r0, const double *base,    \
                                     const double *w, const double *const *x, int32_t k,    \
                                     const int tj) {                                        \
    lanes##N acc[TJ_MAX];                                                                   \
    UNROLL for (int j = 0; j < tj; j++) acc[j] = splat##N(base[j]);                         \
    for (int32_t t = 0; t < k; t++) {                                                       \
        const lanes##N xt = load##N(x[t] + r0);                                             \
        const double *wt = w + (int64_t)t * tj;                                             \
        UNROLL for (int j = 0; j < tj; j++) acc[j] = acc[j] + splat##N(wt[j]) * xt;         \
    }                                                                                       \
    UNROLL for (int j = 0; j < tj; j++) store##N(out[j] + r0, &acc[j]);                     \
}                                                                                           \
                                                                                            \
LANE_LOOP void layer_tile_backward##N(double *const *dx, int64_t r0, const double *const *g, \
                                      const double *w, int64_t ldw, int64_t count,          \
                                      const int tj) {                                       \
    lanes##N acc[TJ_MAX];                                                                   \
    UNROLL for (int t = 0; t < tj; t++) acc[t] = load##N(dx[t] + r0);                       \
    for (int64_t j = count - 1; j >= 0; j--) {                                              \
        const lanes##N gj = load##N(g[j] + r0);                                             \
        const double *wj = w + j * ldw;                                                     \
        UNROLL for (int t = 0; t < tj; t++) acc[t] = acc[t] + gj * splat##N(wj[t]);         \
    }                                                                                       \
    UNROLL for (int t = 0; t < tj; t++) store##N(dx[t] + r0, &acc[t]);                      \
}                                                                                           \
                                                                                            \
LANE_LOOP void layer_tile_sums##N(double *sums, int64_t lds, int nj, int ns,                \
                                  const double *gt, const double *const *x, int64_t nrows) { \
    lanes##N a0[TS], a1[TS], a2[TS], a3[TS];                                                \
    const double *xs[TS];                                                                   \
    UNROLL for (int t = 0; t < TS; t++) {                                                   \
        a0[t] = a1[t] = a2[t] = a3[t] = splat##N(-0.0);                                     \
        xs[t] = x[t];                                                                       \
    }                                                                                       \
    int64_t r = 0;                                                                          \
    for (; r + 4 <= nrows; r += 4) {                                                        \
        const double *G = gt + r * N;                                                       \
        const lanes##N g0 = load##N(G), g1 = load##N(G + N), g2 = load##N(G + 2 * N),       \
                       g3 = load##N(G + 3 * N);                                             \
        UNROLL for (int t = 0; t < TS; t++) a0[t] = a0[t] + g0 * splat##N(xs[t][r]);        \
        UNROLL for (int t = 0; t < TS; t++) a1[t] = a1[t] + g1 * splat##N(xs[t][r + 1]);    \
        UNROLL for (int t = 0; t < TS; t++) a2[t] = a2[t] + g2 * splat##N(xs[t][r + 2]);    \
        UNROLL for (int t = 0; t < TS; t++) a3[t] = a3[t] + g3 * splat##N(xs[t][r + 3]);    \
    }                                                                                       \
    if (r < nrows) {                                                                        \
        const lanes##N g0 = load##N(gt + r * N);                                            \
        UNROLL for (int t = 0; t < TS; t++) a0[t] = a0[t] + g0 * splat##N(xs[t][r]);        \
    }                                                                                       \
    if (r + 1 < nrows) {                                                                    \
        const lanes##N g1 = load##N(gt + (r + 1) * N);                                      \
        UNROLL for (int t = 0; t < TS; t++) a1[t] = a1[t] + g1 * splat##N(xs[t][r + 1]);    \
    }                                                                                       \
    if (r + 2 < nrows) {                                                                    \
        const lanes##N g2 = load##N(gt + (r + 2) * N);                                      \
        UNROLL for (int t = 0; t < TS; t++) a2[t] = a2[t] + g2 * splat##N(xs[t][r + 2]);    \
    }                                                                                       \
    for (int t = 0; t < ns; t++) {                                                          \
        const lanes##N sum = (a0[t] + a1[t]) + (a2[t] + a3[t]);                             \
        double s[N];                                                                        \
        store##N(s, &sum);                                                                  \
        for (int j = 0; j < nj; j++) sums[j * lds + t] = s[j];                              \
    }                                                                                       \
}

LAYER_TILES(4, TS_NARROW)
LAYER_TILES(8, TS_WIDE)

/* the same for the lanes and outputs at the edges of the tiles */
static void layer_edge_forward(double *const *out, int nj, int64_t r0, int64_t nr,
                               const double *base, const double *w, const double *const *x,
                               int32_t k, int tj) {
    for (int j = 0; j < nj; j++)
        for (int64_t r = r0; r < r0 + nr; r++) {
            double acc = base[j];
            for (int32_t t = 0; t < k; t++) acc = acc + w[(int64_t)t * tj + j] * x[t][r];
            out[j][r] = acc;
        }
}

static void layer_edge_backward(double *const *dx, int nt, int64_t r0, int64_t nr,
                                const double *const *g, const double *w, int64_t ldw,
                                int64_t count) {
    for (int t = 0; t < nt; t++)
        for (int64_t r = r0; r < r0 + nr; r++) {
            double acc = dx[t][r];
            for (int64_t j = count - 1; j >= 0; j--) acc = acc + g[j][r] * w[j * ldw + t];
            dx[t][r] = acc;
        }
}

/* One block of scratch per layer call, cut into pieces of whole 64-byte
 * lines (the first piece starts on a line). */
struct scratch { char *block; size_t used; };

static char *scratch_alloc(struct scratch *s, size_t total_lines) {
    s->block = malloc(total_lines * 64 + 64);
    s->used = 0;
    return s->block;
}

static void *scratch_take(struct scratch *s, size_t bytes) {
    char *base = (char *)(((uintptr_t)s->block + 63) & ~(uintptr_t)63);
    void *p = base + s->used;
    s->used += (bytes + 63) / 64 * 64;
    return p;
}

static size_t lines_of(size_t bytes) { return (bytes + 63) / 64; }

/* the width of a tile for the n outputs or inputs left: tj, or half or a
 * quarter of it when that still holds them all (down to 4) */
static int tile_width(int64_t n, int tj) {
    int tw = tj;
    while (tw > 4 && n <= tw / 2) tw /= 2;
    return tw;
}

/* A Tape lays the weights of an MLP's layer out as a matrix: lin j's term s
 * weight at val[o + j * ld + s]. 1, with *o and *ld, when every weight of
 * the layer sits so: along each lin the weights' node numbers follow one
 * another, so their offsets do too (weights do not vary: one double each,
 * check_layers), and the lins' first weights are ld apart (ld may be 0 or
 * negative). The kernels then copy the weights and add their sums row by
 * row instead of looking each up through terms and offset: the same values
 * at the same places, in the same order. The bases are looked up as before. */
LANE_LOOP int weight_matrix(const int64_t *offset, const int32_t *in_b, const int32_t *terms,
                            int64_t first, int64_t count, int32_t k, int64_t *o, int64_t *ld) {
    *o = offset[terms[in_b[first] + 1]];
    *ld = count > 1 ? offset[terms[in_b[first + 1] + 1]] - *o : 0;
    int64_t row = *o;              /* o + j * ld, in range while it matches */
    for (int64_t j = 0; j < count; j++, row += *ld) {
        const int32_t *t = terms + in_b[first + j] + 1;
        if (offset[t[0]] != row) return 0;
        /* node numbers are below 2^31, so t[0] + s < 2^32: no wrap */
        const uint32_t n = (uint32_t)t[0];
        uint32_t diff = 0;
        for (int64_t s = 0; s < k; s++) diff |= (uint32_t)t[2 * s] ^ (n + (uint32_t)s);
        if (diff) return 0;
    }
    return 1;
}

/* the lanes of one tile of tw outputs (with wide, 8 lanes at a time first) */
LANE_LOOP void layer_rows_forward(double *const *out, int nj, const double *base,
                                  const double *w, const double *const *x, int32_t k,
                                  int64_t nrows, const int wide, const int tw) {
    int64_t r0 = 0;
    if (wide)
        for (; r0 + 8 <= nrows; r0 += 8) layer_tile_forward8(out, r0, base, w, x, k, tw);
    for (; r0 + 4 <= nrows; r0 += 4) layer_tile_forward4(out, r0, base, w, x, k, tw);
    if (r0 < nrows) layer_edge_forward(out, nj, r0, nrows - r0, base, w, x, k, tw);
}

/* the lanes of one tile of tw inputs, their weights at w[j * ldw + t] */
LANE_LOOP void layer_rows_backward(double *const *dx, int nt, const double *const *g,
                                   const double *w, int64_t ldw, int64_t count,
                                   int64_t nrows, const int wide, const int tw) {
    int64_t r0 = 0;
    if (wide)
        for (; r0 + 8 <= nrows; r0 += 8) layer_tile_backward8(dx, r0, g, w, ldw, count, tw);
    for (; r0 + 4 <= nrows; r0 += 4) layer_tile_backward4(dx, r0, g, w, ldw, count, tw);
    if (r0 < nrows) layer_edge_backward(dx, nt, r0, nrows - r0, g, w, ldw, count);
}

/* forward: tiles of tj outputs (fewer at the end: tile_width) */
LANE_LOOP int layer_forward_tiles(double *val, const int64_t *offset, const int32_t *in_a,
                                  const int32_t *in_b, const int32_t *terms, int64_t first,
                                  int64_t count, int64_t nrows, const int wide, const int tj) {
    const int32_t k = terms[in_b[first]];
    const int32_t *t0 = terms + in_b[first] + 1;
    const size_t nx = sizeof(double *) * (size_t)k, nw = sizeof(double) * (size_t)k * tj,
                 npad = sizeof(double) * (size_t)nrows;
    struct scratch sc;
    if (!scratch_alloc(&sc, lines_of(nx) + lines_of(nw) + lines_of(npad))) return MBP_ENOMEM;
    const double **x = scratch_take(&sc, nx);
    double *w = scratch_take(&sc, nw);
    double *pad = scratch_take(&sc, npad);                 /* outputs past the last */
    for (int32_t t = 0; t < k; t++) x[t] = val + offset[t0[2 * t + 1]];
    int64_t wo, wld;
    const int mat = weight_matrix(offset, in_b, terms, first, count, k, &wo, &wld);
    for (int64_t j0 = 0; j0 < count;) {
        const int tw = tile_width(count - j0, tj);
        const int nj = count - j0 < tw ? (int)(count - j0) : tw;
        double *out[TJ_MAX], base[TJ_MAX];
        for (int j = 0; j < tw; j++) {
            if (j >= nj) {                    /* a tile's padding: zeros into pad */
                out[j] = pad;
                base[j] = 0.0;
                for (int32_t s = 0; s < k; s++) w[(int64_t)s * tw + j] = 0.0;
                continue;
            }
            const int64_t node = first + j0 + j;
            const int32_t *t = terms + in_b[node] + 1;
            out[j] = val + offset[node];
            base[j] = val[offset[in_a[node]]];
            if (mat) {
                const double *row = val + wo + (j0 + j) * wld;
                for (int32_t s = 0; s < k; s++) w[(int64_t)s * tw + j] = row[s];
            } else {
                for (int32_t s = 0; s < k; s++) w[(int64_t)s * tw + j] = val[offset[t[2 * s]]];
            }
        }
        if (tj >= 16 && tw == 16)     layer_rows_forward(out, nj, base, w, x, k, nrows, wide, 16);
        else if (tj >= 8 && tw == 8)  layer_rows_forward(out, nj, base, w, x, k, nrows, wide, 8);
        else                          layer_rows_forward(out, nj, base, w, x, k, nrows, wide, 4);
        j0 += tw;
    }
    free(sc.block);
    return MBP_OK;
}

/* backward: the inputs' adjoints in tiles of tj inputs (fewer at the end),
 * then the weights' and bases' lane sums (sv = 8 or 4 outputs x TS_WIDE or
 * TS_NARROW inputs at a time, from g transposed), added as lin_backward adds
 * them: lin count-1 first, terms last to first, the base just before term 0 */
LANE_LOOP int layer_backward_tiles(double *adj, const double *val, const int64_t *offset,
                                   const int32_t *in_a, const int32_t *in_b,
                                   const int32_t *terms, int64_t first, int64_t count,
                                   int64_t nrows, const int wide, const int tj,
                                   const int sv) {
    const int32_t k = terms[in_b[first]];
    const int32_t *t0 = terms + in_b[first] + 1;
    /* the inputs x_0 .. x_k-1, then a row of ones whose "weight sums" are
     * the bases' (g * 1.0 is g), then padding up to a whole sum tile */
    const int ts = sv == 8 ? TS_WIDE : TS_NARROW;
    const int64_t nxs = (k + 1 + ts - 1) / ts * ts;
    const int64_t npanels = (count + sv - 1) / sv;          /* of g transposed */
    const int64_t nsums = count * (k + 1);
    const size_t ng = sizeof(double *) * (size_t)(npanels * sv), nx = sizeof(double *) * (size_t)nxs,
                 nW = sizeof(double) * ((size_t)count * (size_t)k + TJ_MAX),
                 npad = sizeof(double) * (size_t)nrows,
                 ngt = sizeof(double) * (size_t)npanels * (size_t)sv * (size_t)nrows,
                 nsum = sizeof(double) * (size_t)nsums;
    struct scratch sc;
    if (!scratch_alloc(&sc, lines_of(ng) + lines_of(nx) + lines_of(nW)
                       + 3 * lines_of(npad) + lines_of(ngt) + lines_of(nsum)))
        return MBP_ENOMEM;
    const double **g = scratch_take(&sc, ng);
    const double **x = scratch_take(&sc, nx);
    double *W = scratch_take(&sc, nW);          /* W[j * k + s]: lin j, term s; then zeros */
    double *pad = scratch_take(&sc, npad);                 /* inputs past the last */
    double *ones = scratch_take(&sc, npad), *zeros = scratch_take(&sc, npad);
    double *gt = scratch_take(&sc, ngt);
    double *sums = scratch_take(&sc, nsum);
    int64_t wo, wld;
    const int mat = weight_matrix(offset, in_b, terms, first, count, k, &wo, &wld);
    for (int64_t j = 0; j < count; j++) {
        const int32_t *t = terms + in_b[first + j] + 1;
        g[j] = adj + offset[first + j];
        if (mat) memcpy(W + j * k, val + wo + j * wld, sizeof(double) * (size_t)k);
        else for (int32_t s = 0; s < k; s++) W[j * k + s] = val[offset[t[2 * s]]];
    }
    for (int t = 0; t < TJ_MAX; t++) W[count * k + t] = 0.0;
    /* the inputs: mul_grad_b of each term, g * w */
    for (int64_t r = 0; r < nrows; r++) pad[r] = 0.0;
    for (int32_t s0 = 0; s0 < k;) {
        const int tw = tile_width(k - s0, tj);
        const int nt = k - s0 < tw ? k - s0 : tw;
        double *dx[TJ_MAX];
        for (int t = 0; t < tw; t++) dx[t] = t < nt ? adj + offset[t0[2 * (s0 + t) + 1]] : pad;
        const double *w = W + s0;         /* past row j's end: row j + 1's or the tail */
        if (tj >= 16 && tw == 16)     layer_rows_backward(dx, nt, g, w, k, count, nrows, wide, 16);
        else if (tj >= 8 && tw == 8)  layer_rows_backward(dx, nt, g, w, k, count, nrows, wide, 8);
        else                          layer_rows_backward(dx, nt, g, w, k, count, nrows, wide, 4);
        s0 += tw;
    }
    /* the bases and weights */
    for (int32_t s = 0; s < k; s++) x[s] = val + offset[t0[2 * s + 1]];
    for (int64_t r = 0; r < nrows; r++) ones[r] = 1.0;
    for (int64_t s = k; s < nxs; s++) x[s] = ones;         /* the bases, then padding */
    for (int64_t r = 0; r < nrows; r++) zeros[r] = 0.0;
    for (int64_t j = count; j < npanels * sv; j++) g[j] = zeros;
    for (int64_t p = 0; p < npanels; p++) {                 /* g transposed, zero-padded */
        const double *from[8];
        double *to = gt + p * nrows * sv;
        UNROLL for (int j = 0; j < sv; j++) from[j] = g[p * sv + j];
        for (int64_t r = 0; r < nrows; r++)
            UNROLL for (int j = 0; j < sv; j++) to[r * sv + j] = from[j][r];
    }
    for (int64_t p = 0; p < npanels; p++) {                 /* sums[j * (k + 1) + s] */
        const int nj = count - sv * p < sv ? (int)(count - sv * p) : sv;
        const double *panel = gt + p * nrows * sv;
        double *to = sums + sv * p * (k + 1);
        for (int64_t s0 = 0; s0 <= k; s0 += ts) {
            const int ns = k + 1 - s0 < ts ? (int)(k + 1 - s0) : ts;
            if (sv == 8) layer_tile_sums8(to + s0, k + 1, nj, ns, panel, x + s0, nrows);
            else         layer_tile_sums4(to + s0, k + 1, nj, ns, panel, x + s0, nrows);
        }
    }
    for (int64_t j = count - 1; j >= 0; j--) {
        const int64_t node = first + j;
        const int32_t *t = terms + in_b[node] + 1;
        const double *S = sums + j * (k + 1);
        if (mat) {                    /* the same order: terms k-1 .. 1, base, term 0 */
            double *row = adj + wo + j * wld;
            for (int32_t s = k - 1; s >= 1; s--) row[s] += S[s];
            adj[offset[in_a[node]]] += S[k];
            row[0] += S[0];
            continue;
        }
        for (int32_t s = k - 1; s >= 0; s--) {
            if (s == 0) adj[offset[in_a[node]]] += S[k];            /* the base */
            adj[offset[t[2 * s]]] += S[s];
        }
    }
    free(sc.block);
    return MBP_OK;
}

/* the variants, and the choice among them */
#define LAYER_VARIANT(name, target, wide, tj, sv)                                        \
    static target int layer_forward_##name(double *val, const int64_t *offset,              \
            const int32_t *in_a, const int32_t *in_b, const int32_t *terms, int64_t first, \
            int64_t count, int64_t nrows) {                                                 \
        return layer_forward_tiles(val, offset, in_a, in_b, terms, first, count, nrows,     \
                                   wide, tj);                                               \
    }                                                                                       \
    static target int layer_backward_##name(double *adj, const double *val,                 \
            const int64_t *offset, const int32_t *in_a, const int32_t *in_b,                \
            const int32_t *terms, int64_t first, int64_t count, int64_t nrows) {            \
        return layer_backward_tiles(adj, val, offset, in_a, in_b, terms, first, count,      \
                                    nrows, wide, tj, sv);                                   \
    }

#define BASELINE                         /* no target attribute: the build's own flags */
LAYER_VARIANT(base, BASELINE, 0, 8, 4)
#ifdef MBP_LAYER_VARIANTS
LAYER_VARIANT(avx2, __attribute__((target("avx2"))), 0, 8, 4)
LAYER_VARIANT(avx512, __attribute__((target("avx512f,avx512vl"))), 1, 16, 8)

/* 2: AVX-512, 1: AVX2, 0: the baseline, at most MBP_LAYERS_MAX */
static int layer_variant(void) {
    __builtin_cpu_init();
    if (MBP_LAYERS_MAX >= 2 && __builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512vl"))
        return 2;
    if (MBP_LAYERS_MAX >= 1 && __builtin_cpu_supports("avx2")) return 1;
    return 0;
}
#endif

static int layer_forward(double *val, const int64_t *offset, const int32_t *in_a,
                         const int32_t *in_b, const int32_t *terms,
                         int64_t first, int64_t count, int64_t nrows) {
#ifdef MBP_LAYER_VARIANTS
    switch (layer_variant()) {
    case 2: return layer_forward_avx512(val, offset, in_a, in_b, terms, first, count, nrows);
    case 1: return layer_forward_avx2(val, offset, in_a, in_b, terms, first, count, nrows);
    }
#endif
    return layer_forward_base(val, offset, in_a, in_b, terms, first, count, nrows);
}

static int layer_backward(double *adj, const double *val, const int64_t *offset,
                          const int32_t *in_a, const int32_t *in_b, const int32_t *terms,
                          int64_t first, int64_t count, int64_t nrows) {
#ifdef MBP_LAYER_VARIANTS
    switch (layer_variant()) {
    case 2: return layer_backward_avx512(adj, val, offset, in_a, in_b, terms, first, count,
                                         nrows);
    case 1: return layer_backward_avx2(adj, val, offset, in_a, in_b, terms, first, count,
                                       nrows);
    }
#endif
    return layer_backward_base(adj, val, offset, in_a, in_b, terms, first, count, nrows);
}

/* ------------------------------------------------------------------------ */
/* the per-node kernels of ops_generated.h, compiled once per variant as the
 * layer kernels are (the same IEEE operations, nothing fused: only the width
 * of the vectors the compiler makes of their lane loops differs), and the
 * choice among them                                                          */

#define OP_VARIANT(name, target)                                                            \
    static target void op_forward_##name(int op, double *out, int64_t w, const double *a,    \
                                         int va, const double *b, int vb) {                 \
        op_forward_lanes(op, out, w, a, va, b, vb);                                          \
    }                                                                                        \
    static target void op_backward_##name(int op, double *da, double *db, int64_t w,         \
            const double *g, const double *out, const double *a, int va, const double *b,   \
            int vb) {                                                                        \
        op_backward_lanes(op, da, db, w, g, out, a, va, b, vb);                              \
    }                                                                                        \
    static target void op_tangent_##name(int op, double *tout, int64_t w, const double *ta, \
            int ha, const double *tb, int hb, const double *out, const double *a, int va,   \
            const double *b, int vb) {                                                       \
        op_tangent_lanes(op, tout, w, ta, ha, tb, hb, out, a, va, b, vb);                    \
    }

OP_VARIANT(base, BASELINE)
#ifdef MBP_LAYER_VARIANTS
OP_VARIANT(avx2, __attribute__((target("avx2"))))
OP_VARIANT(avx512, __attribute__((target("avx512f,avx512vl"))))
#endif

/* Nodes of fewer lanes (a one-row tape's, a value every row shares) take the
 * baseline at once: asking the CPU which variant to run would cost more than
 * the variant saves (all variants give the same bits). */
enum { WIDE_NODE = 8 };

/* out lanes = op(a lanes, b lanes) */
static void op_forward(int op, double *out, int64_t w, const double *a, int va,
                       const double *b, int vb) {
#ifdef MBP_LAYER_VARIANTS
    if (w >= WIDE_NODE) switch (layer_variant()) {
    case 2: op_forward_avx512(op, out, w, a, va, b, vb); return;
    case 1: op_forward_avx2(op, out, w, a, va, b, vb); return;
    }
#endif
    op_forward_base(op, out, w, a, va, b, vb);
}

/* input adjoints += g * local derivative (ops_generated.h) */
static void op_backward(int op, double *da, double *db, int64_t w, const double *g,
                        const double *out, const double *a, int va, const double *b, int vb) {
#ifdef MBP_LAYER_VARIANTS
    if (w >= WIDE_NODE) switch (layer_variant()) {
    case 2: op_backward_avx512(op, da, db, w, g, out, a, va, b, vb); return;
    case 1: op_backward_avx2(op, da, db, w, g, out, a, va, b, vb); return;
    }
#endif
    op_backward_base(op, da, db, w, g, out, a, va, b, vb);
}

/* out tangent lanes (ops_generated.h) */
static void op_tangent(int op, double *tout, int64_t w, const double *ta, int ha,
                       const double *tb, int hb, const double *out, const double *a, int va,
                       const double *b, int vb) {
#ifdef MBP_LAYER_VARIANTS
    if (w >= WIDE_NODE) switch (layer_variant()) {
    case 2: op_tangent_avx512(op, tout, w, ta, ha, tb, hb, out, a, va, b, vb); return;
    case 1: op_tangent_avx2(op, tout, w, ta, ha, tb, hb, out, a, va, b, vb); return;
    }
#endif
    op_tangent_base(op, tout, w, ta, ha, tb, hb, out, a, va, b, vb);
}

/* ------------------------------------------------------------------------ */
/* runs of leaves and constants (a model's parameters: most of a tape's nodes),
 * which the sweeps pass over: 8 ops at a time, their bits or'ed (ops are in
 * range once check_tape passed; leaf 0 and const 1 are the ops with no bit
 * but the lowest set)                                                        */

typedef char leaf_ops_are_0_and_1[(OP_LEAF == 0 && OP_CONST == 1) ? 1 : -1];

/* the first node at or after i that is no leaf or const; n if none */
static inline int64_t skip_leaves_up(const int32_t *op, int64_t i, int64_t n) {
    for (; i + 8 <= n; i += 8) {
        uint32_t bits = 0;
        for (int k = 0; k < 8; k++) bits |= (uint32_t)op[i + k];
        if (bits & ~1u) break;
    }
    while (i < n && op[i] <= OP_CONST) i++;
    return i;
}

/* the last node at or before i that is no leaf or const; -1 if none */
static inline int64_t skip_leaves_down(const int32_t *op, int64_t i) {
    for (; i >= 7; i -= 8) {
        uint32_t bits = 0;
        for (int k = 0; k < 8; k++) bits |= (uint32_t)op[i - k];
        if (bits & ~1u) break;
    }
    while (i >= 0 && op[i] <= OP_CONST) i--;
    return i;
}

/* ------------------------------------------------------------------------ */
/* the three sweeps                                                           */

/* a checked tape, as the sweeps read it */
struct tape {
    const int32_t *op, *in_a, *in_b;
    const uint8_t *varies;
    const int64_t *offset;
    int64_t nnodes, nrows;
    const int32_t *terms, *layers;
    int64_t nlayers;
};

static int forward_sweep(double *val, const struct tape *t) {
    const int32_t *op = t->op, *in_a = t->in_a, *in_b = t->in_b, *terms = t->terms;
    const uint8_t *varies = t->varies;
    const int64_t *offset = t->offset;
    int64_t L = 0;                                     /* the next layer */
    for (int64_t i = 0; i < t->nnodes; i++) {
        const int o = op[i];
        if (o == OP_LEAF || o == OP_CONST) {           /* filled by the caller */
            i = skip_leaves_up(op, i, t->nnodes) - 1;
            continue;
        }
        if (L < t->nlayers && i == t->layers[2 * L]) {
            const int64_t count = t->layers[2 * L + 1];
            const int e = layer_forward(val, offset, in_a, in_b, terms, i, count, t->nrows);
            if (e) return e;
            i += count - 1;
            L++;
            continue;
        }
        const int64_t w = varies[i] ? t->nrows : 1;    /* lanes of this node */
        if (o == OP_LIN) {
            lin_forward(val + offset[i], w, val, offset, varies, in_a[i],
                        terms + in_b[i] + 1, terms[in_b[i]]);
            continue;
        }
        const int32_t b = op_arity[o] == 2 ? in_b[i] : in_a[i];
        op_forward(o, val + offset[i], w, val + offset[in_a[i]], varies[in_a[i]],
                   val + offset[b], varies[b]);
    }
    return MBP_OK;
}

static int backward_sweep(double *adj, const double *val, const struct tape *t) {
    const int32_t *op = t->op, *in_a = t->in_a, *in_b = t->in_b, *terms = t->terms;
    const uint8_t *varies = t->varies;
    const int64_t *offset = t->offset, n = t->nnodes, nrows = t->nrows;
    int64_t L = t->nlayers - 1;                        /* the next layer, going down */
    const int64_t root = offset[n - 1];
    const int64_t used = root + (varies[n - 1] ? nrows : 1);
    for (int64_t k = 0; k < used; k++) adj[k] = -0.0;  /* the exact additive identity */
    /* seed: d(sum over rows of the root) / d root: 1 per lane, or nrows for a
     * root that is the same in every row */
    if (varies[n - 1]) for (int64_t r = 0; r < nrows; r++) adj[root + r] = 1.0;
    else adj[root] = (double)nrows;
    for (int64_t i = n - 1; i >= 0; i--) {
        const int o = op[i];
        if (o == OP_LEAF || o == OP_CONST) {
            i = skip_leaves_down(op, i) + 1;
            continue;
        }
        if (L >= 0 && i == t->layers[2 * L] + t->layers[2 * L + 1] - 1) {
            const int64_t first = t->layers[2 * L];
            const int e = layer_backward(adj, val, offset, in_a, in_b, terms, first,
                                         i - first + 1, nrows);
            if (e) return e;
            i = first;
            L--;
            continue;
        }
        const int64_t w = varies[i] ? nrows : 1;
        if (o == OP_LIN) {
            lin_backward(adj, val, offset, varies, i, w, in_a[i], terms + in_b[i] + 1,
                         terms[in_b[i]]);
            continue;
        }
        const int32_t a = in_a[i], b = op_arity[o] == 2 ? in_b[i] : in_a[i];
        op_backward(o, adj + offset[a], adj + offset[b], w, adj + offset[i], val + offset[i],
                    val + offset[a], varies[a], val + offset[b], varies[b]);
    }
    return MBP_OK;
}

/* ------------------------------------------------------------------------ */
/* sealed programs: a tape copied into memory only this file can reach, and
 * checked there once (the copy, not the caller's arrays: nothing another
 * thread does to those afterwards matters); each run then checks only the
 * length of the buffers it is given against the layout's nval              */

/* node and slot lists: in range of the layout, of the store */
static int check_nodes(const int64_t *offset, int64_t nnodes, const int32_t *nodes, int64_t k,
                       int64_t width, int64_t nval) {
    if (nnodes < 0 || k < 0 || width <= 0) return MBP_ESIZE;
    for (int64_t j = 0; j < k; j++) {
        if (nodes[j] < 0 || nodes[j] >= nnodes) return MBP_ESLOT;
        const int64_t o = offset[nodes[j]];
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

struct mbp_program {
    struct tape t;         /* points into the copies below */
    int64_t nval;          /* the doubles of one value array of this layout */
    int32_t *op, *in_a, *in_b, *terms, *layers;
    uint8_t *varies;
    int64_t *offset;
    int32_t *in_nodes;     /* input slot j's node (nin of them) */
    int32_t *pnodes, *pslots;   /* parameter node j <-> slot pslots[j] of a store */
    int64_t nin, np, nslots;    /* nslots: the store must hold more than the largest slot */
    /* the parameters as runs: run r is slots runs[3r] .. + runs[3r+2] - 1 at the
     * lanes runs[3r+1] .. one after another (parameters j .. in order) */
    int64_t *runs, nruns;
    int pperm;                  /* pslots hold each of 0 .. np-1 once */
};

void mbp_program_free(struct mbp_program *p) {
    if (!p) return;
    free(p->op);
    free(p->in_a);
    free(p->in_b);
    free(p->terms);
    free(p->layers);
    free(p->varies);
    free(p->offset);
    free(p->in_nodes);
    free(p->pnodes);
    free(p->pslots);
    free(p->runs);
    free(p);
}

/* a copy of n items of `size` bytes (a valid pointer even for n = 0) */
static void *copy_of(const void *src, int64_t n, size_t size) {
    void *dst = malloc(n > 0 ? (size_t)n * size : 1);
    if (dst && n > 0) memcpy(dst, src, (size_t)n * size);
    return dst;
}

/* the runs of the parameters (slots and lanes both one after another) and
 * whether their slots are 0 .. np-1, each once (then mbp_fit may move them
 * run by run); p->pslots are checked, p->nslots set */
static int find_runs(struct mbp_program *p) {
    const int64_t np = p->np;
    const int32_t *slots = p->pslots;
    const int64_t *offset = p->t.offset;
    p->runs = malloc(np > 0 ? 3 * (size_t)np * sizeof *p->runs : 1);
    unsigned char *seen = calloc(np > 0 ? (size_t)np : 1, 1);
    if (!p->runs || !seen) {
        free(seen);
        return MBP_ENOMEM;
    }
    p->nruns = 0;
    p->pperm = p->nslots == np;       /* largest slot np-1 */
    for (int64_t j = 0; j < np; j++) {
        const int64_t o = offset[p->pnodes[j]];
        if (p->pperm) {
            if (seen[slots[j]]) p->pperm = 0;    /* slots[j] < nslots == np */
            seen[slots[j]] = 1;
        }
        int64_t *last = p->nruns > 0 ? p->runs + 3 * (p->nruns - 1) : NULL;
        if (last && slots[j] == last[0] + last[2] && o == last[1] + last[2]) {
            last[2]++;
        } else {
            int64_t *r = p->runs + 3 * p->nruns++;
            r[0] = slots[j];
            r[1] = o;
            r[2] = 1;
        }
    }
    free(seen);
    return MBP_OK;
}

int mbp_program_new(struct mbp_program **out, int64_t nval,
                    const int32_t *op, const int32_t *in_a, const int32_t *in_b,
                    const uint8_t *varies, const int64_t *offset, int64_t nnodes, int64_t nrows,
                    const int32_t *terms, int64_t nterms, const int32_t *layers, int64_t nlayers,
                    const int32_t *in_nodes, int64_t nin,
                    const int32_t *pnodes, const int32_t *pslots, int64_t np) {
    *out = NULL;
    if (nnodes <= 0 || nnodes > INT32_MAX || nterms < 0 || nterms > INT32_MAX
        || nlayers < 0 || nlayers > nnodes || nval < 0 || nin < 0 || nin > nnodes
        || np < 0 || np > nnodes)
        return MBP_ESIZE;
    struct mbp_program *p = calloc(1, sizeof *p);
    if (!p) return MBP_ENOMEM;
    p->op = copy_of(op, nnodes, sizeof *op);
    p->in_a = copy_of(in_a, nnodes, sizeof *in_a);
    p->in_b = copy_of(in_b, nnodes, sizeof *in_b);
    p->varies = copy_of(varies, nnodes, sizeof *varies);
    p->offset = offset ? copy_of(offset, nnodes, sizeof *offset)
                       : malloc((size_t)nnodes * sizeof *p->offset);
    if (p->offset && !offset)                /* one value per node: 0, 1, 2, ... */
        for (int64_t i = 0; i < nnodes; i++) p->offset[i] = i;
    p->terms = copy_of(terms, nterms, sizeof *terms);
    p->layers = copy_of(layers, 2 * nlayers, sizeof *layers);
    p->in_nodes = copy_of(in_nodes, nin, sizeof *in_nodes);
    p->pnodes = copy_of(pnodes, np, sizeof *pnodes);
    p->pslots = copy_of(pslots, np, sizeof *pslots);
    if (!p->op || !p->in_a || !p->in_b || !p->varies || !p->offset || !p->terms || !p->layers
        || !p->in_nodes || !p->pnodes || !p->pslots) {
        mbp_program_free(p);
        return MBP_ENOMEM;
    }
    int e = check_tape(p->op, p->in_a, p->in_b, p->varies, p->offset, nnodes, nrows, nval,
                       p->terms, nterms);
    if (!e) e = check_layers(p->op, p->in_a, p->in_b, p->varies, nnodes, p->terms, p->layers,
                             nlayers);
    if (!e) e = check_nodes(p->offset, nnodes, p->in_nodes, nin, nrows, nval);
    if (!e) e = check_nodes(p->offset, nnodes, p->pnodes, np, 1, nval);
    if (!e) e = check_slots(p->pslots, np, INT32_MAX);
    if (e) {
        mbp_program_free(p);
        return e;
    }
    const struct tape t = {p->op, p->in_a, p->in_b, p->varies, p->offset, nnodes, nrows,
                           p->terms, p->layers, nlayers};
    p->t = t;
    p->nval = nval;
    p->nin = nin;
    p->np = np;
    for (int64_t j = 0; j < np; j++)
        if (p->pslots[j] >= p->nslots) p->nslots = (int64_t)p->pslots[j] + 1;
    if ((e = find_runs(p))) {
        mbp_program_free(p);
        return e;
    }
    *out = p;
    return MBP_OK;
}

/* the batch's rows into the input lanes, the parameters from their store */
static void load_rows(double *val, const struct mbp_program *p, const double *rows) {
    const int64_t k = p->nin, nrows = p->t.nrows;
    for (int64_t j = 0; j < k; j++) {
        double *lanes = val + p->t.offset[p->in_nodes[j]];
        for (int64_t r = 0; r < nrows; r++) lanes[r] = rows[r * k + j];
    }
}

/* Both go run by run (find_runs: consecutive slots at consecutive lanes, in
 * the parameters' order), so that a model's store is one straight loop: the
 * same copies and the same additions in the same order as parameter by
 * parameter. */
static void gather(double *val, const struct mbp_program *p, const double *src) {
    for (int64_t r = 0; r < p->nruns; r++) {
        const int64_t *run = p->runs + 3 * r;
        memcpy(val + run[1], src + run[0], (size_t)run[2] * sizeof *val);
    }
}

/* the parameters' gradients into their store */
static void scatter_add(double *dst, const struct mbp_program *p, const double *adj) {
    for (int64_t r = 0; r < p->nruns; r++) {
        const int64_t *run = p->runs + 3 * r, n = run[2];
        double *d = dst + run[0];
        const double *g = adj + run[1];
        for (int64_t i = 0; i < n; i++) d[i] += g[i];
    }
}

int mbp_forward(double *val, int64_t nval, const struct mbp_program *p,
                const double *rows, int64_t nrowvals, const double *src, int64_t nsrc) {
    if (!p || nval < p->nval || (rows && nrowvals / p->t.nrows < p->nin)
        || (src && nsrc < p->nslots))
        return MBP_ESIZE;
    if (rows) load_rows(val, p, rows);
    if (src) gather(val, p, src);
    return forward_sweep(val, &p->t);
}

int mbp_backward(double *adj, const double *val, int64_t nval, const struct mbp_program *p,
                 double *dst, int64_t ndst) {
    if (!p || nval < p->nval || (dst && ndst < p->nslots)) return MBP_ESIZE;
    const int e = backward_sweep(adj, val, &p->t);
    if (!e && dst) scatter_add(dst, p, adj);
    return e;
}

int mbp_tangent(double *tan, const double *val, int64_t nval, const struct mbp_program *p) {
    if (!p || nval < p->nval) return MBP_ESIZE;
    const struct tape *t = &p->t;
    const int32_t *op = t->op, *in_a = t->in_a, *in_b = t->in_b, *terms = t->terms;
    const uint8_t *varies = t->varies;
    const int64_t *offset = t->offset, nrows = t->nrows;
    for (int64_t i = 0; i < t->nnodes; i++) {
        const int o = op[i];
        if (o == OP_LEAF || o == OP_CONST || !varies[i]) continue;  /* no tangent */
        if (o == OP_LIN) {
            lin_tangent(tan + offset[i], nrows, val, tan, offset, varies, in_a[i],
                        terms + in_b[i] + 1, terms[in_b[i]]);
            continue;
        }
        const int32_t a = in_a[i], b = op_arity[o] == 2 ? in_b[i] : in_a[i];
        op_tangent(o, tan + offset[i], nrows, tan + offset[a], varies[a], tan + offset[b],
                   op_arity[o] == 2 && varies[b], val + offset[i], val + offset[a], varies[a],
                   val + offset[b], varies[b]);
    }
    return MBP_OK;
}

/* ------------------------------------------------------------------------ */
/* moving parameters and batches in and out of a tape                        */

int mbp_gather(double *val, int64_t nval, const int64_t *offset, int64_t nnodes,
               const int32_t *nodes, const int32_t *slots, int64_t k,
               const double *src, int64_t nsrc) {
    int e = check_nodes(offset, nnodes, nodes, k, 1, nval);
    if (!e) e = check_slots(slots, k, nsrc);
    if (e) return e;
    for (int64_t j = 0; j < k; j++) val[offset[nodes[j]]] = src[slots[j]];
    return MBP_OK;
}

int mbp_scatter_add(double *dst, int64_t ndst, const double *adj, int64_t nadj,
                    const int64_t *offset, int64_t nnodes,
                    const int32_t *nodes, const int32_t *slots, int64_t k) {
    int e = check_nodes(offset, nnodes, nodes, k, 1, nadj);
    if (!e) e = check_slots(slots, k, ndst);
    if (e) return e;
    for (int64_t j = 0; j < k; j++) dst[slots[j]] += adj[offset[nodes[j]]];
    return MBP_OK;
}

int mbp_load_rows(double *val, int64_t nval, const int64_t *offset, int64_t nnodes,
                  const int32_t *nodes, int64_t k, const double *rows, int64_t nrowvals,
                  int64_t nrows) {
    const int e = (nrows <= 0 || k < 0 || nrowvals < 0 || (k > 0 && nrows > nrowvals / k))
        ? MBP_ESIZE : check_nodes(offset, nnodes, nodes, k, nrows, nval);
    if (e) return e;
    for (int64_t j = 0; j < k; j++) {
        double *lanes = val + offset[nodes[j]];
        for (int64_t r = 0; r < nrows; r++) lanes[r] = rows[r * k + j];
    }
    return MBP_OK;
}

/* ------------------------------------------------------------------------ */
/* optimizers (microbp/optim.py holds the Python twins, beside each class)    */

/* the updates themselves; the kernels below and mbp_fit check first. SGD's and
 * momentum's are written once as a lane loop and compiled twice: over
 * slots[j] and, when the slots are 0, 1, ..., k-1 (an optimizer over a whole
 * store, the usual case), over j itself, which the compiler vectorizes: the
 * same operations on the same doubles in the same order. (Adam's sqrt and
 * divisions keep it one slot at a time either way.) */
static int slots_in_order(const int32_t *slots, int64_t k) {
    if (k > INT32_MAX) return 0;
    uint32_t diff = 0;
    for (int64_t j = 0; j < k; j++) diff |= (uint32_t)slots[j] ^ (uint32_t)j;
    return diff == 0;
}

#define SLOT(j) (in_order ? (j) : (int64_t)slots[j])

LANE_LOOP void sgd_lanes(double *data, const double *grad, const int32_t *slots, int64_t k,
                         double lr, int in_order) {
    for (int64_t j = 0; j < k; j++) {
        const int64_t s = SLOT(j);
        data[s] = data[s] - lr * grad[s];
    }
}

static void sgd_update(double *data, const double *grad, const int32_t *slots, int64_t k,
                       double lr) {
    if (slots_in_order(slots, k)) sgd_lanes(data, grad, slots, k, lr, 1);
    else sgd_lanes(data, grad, slots, k, lr, 0);
}

LANE_LOOP void momentum_lanes(double *data, double *vel, const double *grad,
                              const int32_t *slots, int64_t k, double lr, double mu,
                              int in_order) {
    for (int64_t j = 0; j < k; j++) {
        const int64_t s = SLOT(j);
        vel[j] = mu * vel[j] - lr * grad[s];          /* v <- mu v - lr g */
        data[s] = data[s] + vel[j];                    /* w <- w + v */
    }
}

static void momentum_update(double *data, double *vel, const double *grad,
                            const int32_t *slots, int64_t k, double lr, double mu) {
    if (slots_in_order(slots, k)) momentum_lanes(data, vel, grad, slots, k, lr, mu, 1);
    else momentum_lanes(data, vel, grad, slots, k, lr, mu, 0);
}

#undef SLOT

static void adam_update(double *data, double *m, double *v, const double *grad,
                        const int32_t *slots, int64_t k, double lr, double beta1, double beta2,
                        double eps, double bc1, double bc2) {
    for (int64_t j = 0; j < k; j++) {
        const int32_t s = slots[j];
        const double gr = grad[s];
        m[j] = beta1 * m[j] + (1.0 - beta1) * gr;
        v[j] = beta2 * v[j] + (1.0 - beta2) * (gr * gr);
        const double mhat = m[j] / bc1, vhat = v[j] / bc2;   /* bias correction */
        data[s] = data[s] - lr * mhat / (sqrt(vhat) + eps);
    }
}

int mbp_sgd(double *data, const double *grad, int64_t nslots,
            const int32_t *slots, int64_t k, double lr) {
    const int e = check_slots(slots, k, nslots);
    if (e) return e;
    sgd_update(data, grad, slots, k, lr);
    return MBP_OK;
}

int mbp_momentum(double *data, double *vel, const double *grad, int64_t nslots,
                 int64_t nstate, const int32_t *slots, int64_t k, double lr, double mu) {
    const int e = k > nstate ? MBP_ESIZE : check_slots(slots, k, nslots);
    if (e) return e;
    momentum_update(data, vel, grad, slots, k, lr, mu);
    return MBP_OK;
}

int mbp_adam(double *data, double *m, double *v, const double *grad, int64_t nslots,
             int64_t nstate, const int32_t *slots, int64_t k, double lr, double beta1,
             double beta2, double eps, double bc1, double bc2) {
    const int e = k > nstate ? MBP_ESIZE : check_slots(slots, k, nslots);
    if (e) return e;
    adam_update(data, m, v, grad, slots, k, lr, beta1, beta2, eps, bc1, bc2);
    return MBP_OK;
}

/* ------------------------------------------------------------------------ */
/* whole training steps in one call (Tape.fit; optim.py's step() order)       */

/* The usual shape: the optimizer's slots are 0 .. k-1 in order and the
 * program's parameters are those k slots, each once, in runs (a model's store).
 * Then a step's zero_grad, scatter_add and update, and the next step's gather,
 * are one pass per run: per parameter the very operations of the four passes,
 * in their order (grad = 0.0 + adj, not adj: -0.0), on contiguous arrays. */
static int fit_in_runs(const struct mbp_program *p, const int32_t *oslots, int64_t no) {
    if (!p->pperm || no != p->np) return 0;
    for (int64_t j = 0; j < no; j++)
        if (oslots[j] != j) return 0;
    return 1;
}

/* one run's update: g its adjoints, w/grad/m/v from its first slot, and, when
 * `load`, w's new values into its lanes x (the next step's gather) */
static void sgd_run(double *w, double *grad, const double *g, double *x, int64_t n,
                    double lr, int load) {
    for (int64_t i = 0; i < n; i++) {
        const double gi = 0.0 + g[i];
        grad[i] = gi;
        w[i] = w[i] - lr * gi;
    }
    if (load) memcpy(x, w, (size_t)n * sizeof *x);
}

static void momentum_run(double *w, double *vel, double *grad, const double *g, double *x,
                         int64_t n, double lr, double mu, int load) {
    for (int64_t i = 0; i < n; i++) {
        const double gi = 0.0 + g[i];
        grad[i] = gi;
        vel[i] = mu * vel[i] - lr * gi;
        w[i] = w[i] + vel[i];
    }
    if (load) memcpy(x, w, (size_t)n * sizeof *x);
}

static void adam_run(double *w, double *m, double *v, double *grad, const double *g, double *x,
                     int64_t n, double lr, double beta1, double beta2, double eps, double bc1,
                     double bc2, int load) {
    for (int64_t i = 0; i < n; i++) {
        const double gi = 0.0 + g[i];
        grad[i] = gi;
        m[i] = beta1 * m[i] + (1.0 - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0 - beta2) * (gi * gi);
        const double mhat = m[i] / bc1, vhat = v[i] / bc2;
        w[i] = w[i] - lr * mhat / (sqrt(vhat) + eps);
    }
    if (load) memcpy(x, w, (size_t)n * sizeof *x);
}

int mbp_fit(double *val, double *adj, int64_t nval, const struct mbp_program *p,
            double *data, double *grad, int64_t nslots,
            const int32_t *oslots, int64_t no, int kind, const double *hyper, int64_t nhyper,
            double *s1, double *s2, int64_t nstate,
            int64_t t0, int64_t steps, double *losses, int64_t nlosses) {
    if (!p || nval < p->nval || nslots < p->nslots) return MBP_ESIZE;
    const struct tape *t = &p->t;
    const int64_t *offset = t->offset, nnodes = t->nnodes, nrows = t->nrows;
    const uint8_t *varies = t->varies;
    int e = check_slots(oslots, no, nslots);
    const int64_t need = kind == MBP_FIT_SGD ? 2 : kind == MBP_FIT_MOMENTUM ? 2 : 4;
    if (!e && (kind < MBP_FIT_SGD || kind > MBP_FIT_ADAM || nhyper < need || steps < 0
               || t0 < 0 || nlosses < steps || (kind != MBP_FIT_SGD && no > nstate)))
        e = MBP_ESIZE;
    if (e) return e;
    const int64_t root = offset[nnodes - 1], width = varies[nnodes - 1] ? nrows : 1;
    /* in runs, each step's gather is done by the step before (the first here),
     * and zero_grad by the update; a sweep that fails leaves what the passes
     * would have left: grad zeroed, the parameters gathered */
    const int runs = fit_in_runs(p, oslots, no);
    if (runs && steps > 0) gather(val, p, data);
    for (int64_t step = 0; step < steps; step++) {
        const int64_t tt = t0 + step;                  /* the optimizer's step count */
        if (!runs) {
            for (int64_t j = 0; j < no; j++) grad[oslots[j]] = 0.0;        /* zero_grad */
            gather(val, p, data);
        }
        if ((e = forward_sweep(val, t))) break;
        double loss = 0.0;                             /* sum of the rows' outputs */
        for (int64_t r = 0; r < nrows; r++) loss += val[root + (width > 1 ? r : 0)];
        losses[step] = loss;
        if ((e = backward_sweep(adj, val, t))) break;
        if (runs) {
            const int load = step + 1 < steps;
            const double lr = kind == MBP_FIT_SGD
                ? hyper[0] / (1.0 + hyper[1] * (double)tt) : hyper[0];
            const double n1 = (double)(tt + 1);
            const double bc1 = kind == MBP_FIT_ADAM ? 1.0 - pow(hyper[1], n1) : 0.0;
            const double bc2 = kind == MBP_FIT_ADAM ? 1.0 - pow(hyper[2], n1) : 0.0;
            for (int64_t r = 0; r < p->nruns; r++) {
                const int64_t s = p->runs[3 * r], o = p->runs[3 * r + 1], n = p->runs[3 * r + 2];
                if (kind == MBP_FIT_SGD)
                    sgd_run(data + s, grad + s, adj + o, val + o, n, lr, load);
                else if (kind == MBP_FIT_MOMENTUM)
                    momentum_run(data + s, s1 + s, grad + s, adj + o, val + o, n, lr, hyper[1],
                                 load);
                else
                    adam_run(data + s, s1 + s, s2 + s, grad + s, adj + o, val + o, n, lr,
                             hyper[1], hyper[2], hyper[3], bc1, bc2, load);
            }
            continue;
        }
        scatter_add(grad, p, adj);
        if (kind == MBP_FIT_SGD) {
            sgd_update(data, grad, oslots, no, hyper[0] / (1.0 + hyper[1] * (double)tt));
        } else if (kind == MBP_FIT_MOMENTUM) {
            momentum_update(data, s1, grad, oslots, no, hyper[0], hyper[1]);
        } else {
            const double n1 = (double)(tt + 1);
            adam_update(data, s1, s2, grad, oslots, no, hyper[0], hyper[1], hyper[2], hyper[3],
                        1.0 - pow(hyper[1], n1), 1.0 - pow(hyper[2], n1));
        }
    }
    if (e && runs)
        for (int64_t j = 0; j < no; j++) grad[j] = 0.0;
    return e;
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
