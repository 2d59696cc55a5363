/*
 * microbp C core: forward and backward sweeps over a flat node array.
 *
 * A tape is a structure of arrays in topological order (see microbp/pyexec.py,
 * the pure-Python mirror of this file): op[i], inputs a[i] and b[i] (< i),
 * vary[i] (1: node i has one value per row of the batch, 0: one value),
 * off[i], where node i's values start in val[] and adj[], and ext[], the term
 * lists of fused "lin" nodes (ext[b[i]] = k, then k pairs of node indices).
 *
 * The op codes OP_<NAME> come from the op table in microbp/ops.py, handed to
 * the compiler as -D macros by microbp/_cbuild.py.
 *
 * Every function checks its arguments before touching memory and returns 0 on
 * success or a negative MBP_E* code; it never reads or writes outside the
 * arrays whose lengths it is given.
 */
#ifndef MICROBP_H
#define MICROBP_H
#include <stdint.h>

#define MBP_OK 0
#define MBP_EOP -1        /* unknown op code */
#define MBP_EINDEX -2     /* an input index that is not an earlier node */
#define MBP_EVARY -3      /* vary[] not 0/1 or unlike the node's inputs */
#define MBP_ELAYOUT -4    /* offsets that do not tile the value array */
#define MBP_ESIZE -5      /* a size that is negative, zero or too small */
#define MBP_ESLOT -6      /* a node or slot index out of range */

/* val[node] = op(val[a], val[b]) for every non-leaf node, up the array */
int mbp_forward(double *val, int64_t nval,
                const int32_t *op, const int32_t *a, const int32_t *b,
                const uint8_t *vary, const int64_t *off, int64_t n, int64_t nr,
                const int32_t *ext, int64_t next);

/* adj[node] = d(sum over rows of the last node) / d(node), down the array */
int mbp_backward(double *adj, const double *val, int64_t nval,
                 const int32_t *op, const int32_t *a, const int32_t *b,
                 const uint8_t *vary, const int64_t *off, int64_t n, int64_t nr,
                 const int32_t *ext, int64_t next);

/* val[off[nodes[j]]] = src[slots[j]]: parameter values into the tape */
int mbp_gather(double *val, int64_t nval, const int64_t *off, int64_t n,
               const int32_t *nodes, const int32_t *slots, int64_t k,
               const double *src, int64_t nsrc);

/* dst[slots[j]] += adj[off[nodes[j]]]: parameter gradients out of the tape */
int mbp_scatter_add(double *dst, int64_t ndst, const double *adj, int64_t nadj,
                    const int64_t *off, int64_t n,
                    const int32_t *nodes, const int32_t *slots, int64_t k);

/* val[off[nodes[j]] + r] = rows[r * k + j]: a batch (nr rows of k) into the input lanes */
int mbp_load_rows(double *val, int64_t nval, const int64_t *off, int64_t n,
                  const int32_t *nodes, int64_t k, const double *rows, int64_t nrows, int64_t nr);

/* optimizer updates over data[slots[j]] with gradient grad[slots[j]]; state per j */
int mbp_sgd(double *data, const double *grad, int64_t nslots,
            const int32_t *slots, int64_t k, double lr);
int mbp_momentum(double *data, double *vel, const double *grad, int64_t nslots,
                 int64_t nstate, const int32_t *slots, int64_t k, double lr, double mu);
int mbp_adam(double *data, double *m, double *v, const double *grad, int64_t nslots,
             int64_t nstate, const int32_t *slots, int64_t k, double lr, double beta1, double beta2,
             double eps, double bc1, double bc2);
/* the op table the core was built from: the number of ops, and an op's arity (-1: no such op) */
int mbp_num_ops(void);
int mbp_arity(int op);

/* the index of the first nan or inf in x[start:stop], -1 if none, -2 for a bad range */
int64_t mbp_first_nonfinite(const double *x, int64_t n, int64_t start, int64_t stop);

/* dst[slots[j]] = value (zero_grad) */
int mbp_fill(double *dst, int64_t ndst, const int32_t *slots, int64_t k, double value);

#endif
