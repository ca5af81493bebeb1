// Optimiser updates (CPU reference: jnerf/ops/optim/reference.py, which is jittor.nn.Adam's arithmetic).
//
// Thread layout: one thread per parameter element, a grid-stride loop over n. Shapes: param, grad, m, v [n] f32
// (any shape, flattened) -> param', m', v' [n] f32. One launch per parameter tensor replaces the separate Jittor
// kernels of the reference (grad copy, first moment, second moment, update) and reads each array once: the hash
// table (16 levels x 2^19 x 2 floats) dominates, ~470 MB of traffic per step at 2^19 entries.
//
// Per element, in float32 and in the reference's order:
//   g  = grad + weight_decay * param            (only when weight_decay != 0)
//   m' = beta1 * m + (1 - beta1) * g
//   v' = beta2 * v + (1 - beta2) * g * g
//   p' = p - m' * step_size / (sqrt(v') + eps)  step_size = lr * sqrt(1 - beta2^t) / (1 - beta1^t), from the host
// The reference is not bit-matched (Jittor's fused kernels may contract into FMAs); tests compare with a tolerance.
#pragma once
#include "jnerf/ops/common.h"  // from the package root: Jittor has its own src/common.h

namespace jnerf {

struct AdamParams {
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float step_size, eps, weight_decay;
};

static __global__ void adam_update_kernel(const float* __restrict__ param, const float* __restrict__ grad,
                                          const float* __restrict__ m, const float* __restrict__ v,
                                          float* __restrict__ param_out, float* __restrict__ m_out,
                                          float* __restrict__ v_out, uint64_t n, AdamParams a) {
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = global_index(); i < n; i += stride) {
        const float p = param[i];
        float g = grad[i];
        if (a.weight_decay != 0.f) g += a.weight_decay * p;
        const float m1 = a.beta1 * m[i] + a.one_minus_beta1 * g;
        const float v1 = a.beta2 * v[i] + a.one_minus_beta2 * g * g;
        m_out[i] = m1;
        v_out[i] = v1;
        param_out[i] = p - m1 * a.step_size / (sqrtf(v1) + a.eps);
    }
}

// Blocks for a grid-stride loop: enough to fill the device several times over, no more (a 16.8M-element table
// would otherwise launch 65k blocks of one pass each).
__host__ inline uint32_t stride_blocks(uint64_t n) {
    const uint32_t cap = 132 * 16;  // an H100/H200's 132 SMs x 16 blocks of 256 threads (twice what fits at once)
    const uint32_t b = n_blocks(n);
    return b < cap ? b : cap;
}

}  // namespace jnerf
