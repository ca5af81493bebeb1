// Volume rendering over packed samples (nerfacc layout; CPU reference: jnerf/ops/volume_render/reference.py).
//
// Shapes: alpha [S] f32; packed_info [R,2] i32 (first, count); ray_indices [S] i32 (sorted: a ray's samples are
// contiguous, as PackedSamples guarantees); weights [S] f32; values [S,C] f32; accumulated [R,C] f32.
//
// Transmittance is carried in double along a ray (the reference sums log(1 - alpha) in float64), with 1 - alpha
// clamped to >= 1e-10 exactly as the reference clamps it before the log.
#pragma once
#include "jnerf/ops/common.h"  // from the package root: Jittor has its own src/common.h

namespace jnerf {

constexpr double kMinKeep = 1e-10;  // = reference._MIN_TRANSMITTANCE

// One thread per ray: w_i = alpha_i * prod_{j<i} max(1 - alpha_j, 1e-10).
static __global__ void render_weights_forward_kernel(const float* __restrict__ alpha, const int* __restrict__ packed_info,
                                              float* __restrict__ weights, uint32_t n_rays) {
    const uint64_t r = global_index();
    if (r >= n_rays) return;
    const int first = packed_info[2 * r], count = packed_info[2 * r + 1];
    double trans = 1.0;
    for (int i = first; i < first + count; i++) {
        const double a = alpha[i];
        weights[i] = (float)(a * trans);
        trans *= fmax(1.0 - a, kMinKeep);
    }
}

// One thread per ray, gradient of sum_i g_i w_i:
//   d/d alpha_i = g_i T_i - [1 - alpha_i > 1e-10] * (sum_{k>i} g_k w_k) / (1 - alpha_i).
// Pass 1 forms the total G = sum_k g_k w_k, pass 2 walks forward again with the inclusive prefix P_i, so the
// suffix is G - P_i (double, no division of a transmittance by a small factor).
static __global__ void render_weights_backward_kernel(const float* __restrict__ alpha, const int* __restrict__ packed_info,
                                               const float* __restrict__ dweights, float* __restrict__ dalpha,
                                               uint32_t n_rays) {
    const uint64_t r = global_index();
    if (r >= n_rays) return;
    const int first = packed_info[2 * r], count = packed_info[2 * r + 1];
    double trans = 1.0, total = 0.0;
    for (int i = first; i < first + count; i++) {
        const double a = alpha[i];
        total += (double)dweights[i] * a * trans;
        trans *= fmax(1.0 - a, kMinKeep);
    }
    trans = 1.0;
    double prefix = 0.0;
    for (int i = first; i < first + count; i++) {
        const double a = alpha[i], g = dweights[i];
        prefix += g * a * trans;
        const double keep = 1.0 - a;
        double d = g * trans;
        if (keep > kMinKeep) d -= (total - prefix) / keep;
        dalpha[i] = (float)d;
        trans *= fmax(keep, kMinKeep);
    }
}

// Warp-level segmented sum over lanes with the same ray (contiguous, since ray_indices is sorted), then one
// atomicAdd per (ray segment in the warp, channel). out [R,C] is zeroed by the caller.
// values == nullptr means C == 1 and the value is 1 (sum of weights).
static __global__ void accumulate_forward_kernel(const float* __restrict__ weights, const float* __restrict__ values,
                                          const int* __restrict__ ray_indices, float* __restrict__ out,
                                          uint32_t n_samples, uint32_t n_channels) {
    const uint64_t i = global_index();
    const bool valid = i < n_samples;
    const unsigned lane = threadIdx.x & 31;
    const int ray = valid ? ray_indices[i] : -1;
    const float w = valid ? weights[i] : 0.f;
    // Is lane+off in the same segment? Sorted keys: equal keys at distance off mean every lane between matches.
    bool head = true;
    {
        const int prev = __shfl_up_sync(0xffffffffu, ray, 1);
        head = lane == 0 || prev != ray;
    }
    for (uint32_t c = 0; c < n_channels; c++) {
        float v = valid ? (values ? w * values[i * n_channels + c] : w) : 0.f;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
            const float other = __shfl_down_sync(0xffffffffu, v, off);
            const int other_ray = __shfl_down_sync(0xffffffffu, ray, off);
            if (lane + off < 32 && other_ray == ray) v += other;
        }
        if (valid && head) atomicAdd(out + (uint64_t)ray * n_channels + c, v);
    }
}

// d weights_i = sum_c dout[r_i, c] * values[i, c] (values == nullptr: dout[r_i, 0]); d values[i, c] = w_i * dout[r_i, c].
static __global__ void accumulate_backward_kernel(const float* __restrict__ weights, const float* __restrict__ values,
                                           const int* __restrict__ ray_indices, const float* __restrict__ dout,
                                           float* __restrict__ dweights, float* __restrict__ dvalues,
                                           uint32_t n_samples, uint32_t n_channels) {
    const uint64_t i = global_index();
    if (i >= n_samples) return;
    const float* g = dout + (uint64_t)ray_indices[i] * n_channels;
    if (!values) {
        dweights[i] = g[0];
        return;
    }
    const float w = weights[i];
    float dw = 0.f;
    for (uint32_t c = 0; c < n_channels; c++) {
        const float gc = g[c];
        dw += gc * values[i * n_channels + c];
        if (dvalues) dvalues[i * n_channels + c] = w * gc;
    }
    dweights[i] = dw;
}

}  // namespace jnerf
