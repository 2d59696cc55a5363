/*
 * microbp C core: the interface. See microbp.c for what it does and
 * microbp/tapeformat.py for the tape format it checks.
 *
 * A tape is a structure of arrays over nnodes nodes in topological order:
 *   op[i]       op code (OP_<NAME>, csrc/ops_generated.h, from microbp/ops.py)
 *   in_a[i]     first input, an earlier node (-1: none)
 *   in_b[i]     second input (-1: none); for a lin node: where its terms start
 *   varies[i]   1: one value per row of the batch (its lanes), 0: one value
 *   offset[i]   where node i's values start in val[] (and adj[], tan[])
 *   terms[]     lin term lists: terms[in_b[i]] = k, then k pairs (p, q)
 *   layers[]    pairs (first, count): runs of lin nodes over the same inputs,
 *               swept together (see microbp.c); may be empty
 *
 * Every function checks its arguments against the lengths it is given
 * before it touches memory, returns 0 or a negative MBP_E* code, and never
 * reads or writes outside those lengths. Outputs come first, then inputs,
 * then sizes.
 */
#ifndef MICROBP_H
#define MICROBP_H
#include <stdint.h>

#define MBP_OK 0
#define MBP_EOP -1        /* unknown op code */
#define MBP_EINDEX -2     /* an input index that is not an earlier node */
#define MBP_EVARY -3      /* varies[] not 0/1 or unlike the node's inputs */
#define MBP_ELAYOUT -4    /* offsets that do not tile the value array */
#define MBP_ESIZE -5      /* a size that is negative, zero or too small */
#define MBP_ESLOT -6      /* a node or slot index out of range */
#define MBP_ELAYER -7     /* a layer that is not a run of lin nodes over the same inputs */
#define MBP_ENOMEM -8     /* out of memory for a layer's scratch */

/* A sealed program: the tape copied into memory of the core's own and checked
 * there once, for value arrays of nval doubles (its layout), with the nodes
 * its batch rows fill (in_nodes: input slot j -> node) and the nodes of its
 * parameters in one store (pnodes[j] <-> store slot pslots[j]). *out is NULL
 * unless it returns 0; free it with mbp_program_free. A NULL offset means
 * one value per node (offset[i] = i, a one-row tape of fixed nodes). The runs
 * below check only that the buffers they get are large enough for the program. */
struct mbp_program;
int mbp_program_new(struct mbp_program **out, int64_t nval,
                    const int32_t *op, const int32_t *in_a, const int32_t *in_b,
                    const uint8_t *varies, const int64_t *offset, int64_t nnodes, int64_t nrows,
                    const int32_t *terms, int64_t nterms, const int32_t *layers, int64_t nlayers,
                    const int32_t *in_nodes, int64_t nin,
                    const int32_t *pnodes, const int32_t *pslots, int64_t np);
void mbp_program_free(struct mbp_program *p);
/* the rows (nrows x nin, row-major) into the input lanes unless rows is NULL,
 * the parameters from src[pslots] unless src is NULL, then
 * val[node] = op(val[in_a], val[in_b]) for every non-leaf node, up the tape */
int mbp_forward(double *val, int64_t nval, const struct mbp_program *p,
                const double *rows, int64_t nrowvals, const double *src, int64_t nsrc);
/* adj[node] = d(sum over rows of the last node) / d(node), down the tape; then
 * dst[pslots[j]] += adj of pnodes[j] unless dst is NULL */
int mbp_backward(double *adj, const double *val, int64_t nval, const struct mbp_program *p,
                 double *dst, int64_t ndst);
/* tan[node] = d(node)/d(input slots) . (tangent of the slots), up the tape, for
 * the nodes that vary (the tangents of the input slots are set by the caller) */
int mbp_tangent(double *tan, const double *val, int64_t nval, const struct mbp_program *p);
/* val[offset[nodes[j]]] = src[slots[j]]: parameter values into the tape */
int mbp_gather(double *val, int64_t nval, const int64_t *offset, int64_t nnodes,
               const int32_t *nodes, const int32_t *slots, int64_t k,
               const double *src, int64_t nsrc);

/* dst[slots[j]] += adj[offset[nodes[j]]]: parameter gradients out of the tape */
int mbp_scatter_add(double *dst, int64_t ndst, const double *adj, int64_t nadj,
                    const int64_t *offset, int64_t nnodes,
                    const int32_t *nodes, const int32_t *slots, int64_t k);

/* val[offset[nodes[j]] + r] = rows[r * k + j]: nrows rows of k into the input lanes */
int mbp_load_rows(double *val, int64_t nval, const int64_t *offset, int64_t nnodes,
                  const int32_t *nodes, int64_t k, const double *rows, int64_t nrowvals,
                  int64_t nrows);

/* optimizer updates of data[slots[j]] by grad[slots[j]]; their state per j */
int mbp_sgd(double *data, const double *grad, int64_t nslots,
            const int32_t *slots, int64_t k, double lr);
int mbp_momentum(double *data, double *vel, const double *grad, int64_t nslots,
                 int64_t nstate, const int32_t *slots, int64_t k, double lr, double mu);
int mbp_adam(double *data, double *m, double *v, const double *grad, int64_t nslots,
             int64_t nstate, const int32_t *slots, int64_t k, double lr, double beta1,
             double beta2, double eps, double bc1, double bc2);

/* `steps` training steps on the batch already in the input lanes of val, each
 * as optim.py and Tape make it, with the program's parameters (pnodes, pslots)
 * in the store data/grad: grad[oslots] = 0; val[offset[pnodes[j]]] =
 * data[pslots[j]]; forward; losses[step] = the sum of the rows' outputs;
 * backward; grad[pslots[j]] += adj[offset[pnodes[j]]]; then the optimizer's
 * update of data[oslots] at step count t0 + step: kind MBP_FIT_SGD (hyper:
 * lr, decay), MBP_FIT_MOMENTUM (lr, mu; velocity s1), MBP_FIT_ADAM (lr,
 * beta1, beta2, eps; moments s1, s2) */
#define MBP_FIT_SGD 0
#define MBP_FIT_MOMENTUM 1
#define MBP_FIT_ADAM 2
int mbp_fit(double *val, double *adj, int64_t nval, const struct mbp_program *p,
            double *data, double *grad, int64_t nslots,
            const int32_t *oslots, int64_t no, int kind, const double *hyper, int64_t nhyper,
            double *s1, double *s2, int64_t nstate,
            int64_t t0, int64_t steps, double *losses, int64_t nlosses);

/* dst[slots[j]] = value (zero_grad) */
int mbp_fill(double *dst, int64_t ndst, const int32_t *slots, int64_t k, double value);

/* the op table the core was built from: the number of ops, an op's arity (-1: no such op) */
int mbp_num_ops(void);
int mbp_arity(int op);

/* the index of the first nan or inf in x[start:stop], -1 if none, -2 for a bad range */
int64_t mbp_first_nonfinite(const double *x, int64_t n, int64_t start, int64_t stop);

#endif
