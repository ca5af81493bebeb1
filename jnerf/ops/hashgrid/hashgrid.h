// Multiresolution hash encoding, forward and backward (docs/design.md "Encoders"; CPU reference:
// jnerf/ops/hashgrid/reference.py). Launched from hashgrid.py through jt.code.
//
// Thread layout: one thread per (point, level); grid = (ceil(N/kThreads), L), blockIdx.y = level. The blocks of
// one level run together, so the table slice (and, in backward, the gradient slice) being gathered/atomically
// updated is one level's T*F entries, which stays in L2. Reads of x are coalesced (consecutive points); the
// F-wide output of a (point, level) is one vector store.
//
// Shapes: x [N,3] f32; table [L,T,F] T_t (float or __half); scales [L] f32; out [N, L*F] f32, level-major;
// dout [N, L*F] f32; grad_table [L,T,F] f32 (zeroed by the caller); dx [N,3] f32 (zeroed by the caller).
#pragma once
#include "jnerf/ops/common.h"  // from the package root: Jittor has its own src/common.h

namespace jnerf {

// The per-(point, level) interpolation setup: pos = x*scale + 0.5 (no FMA, as the reference), p0 = floor(pos),
// w = pos - p0, and how vertex coordinates map to a table row.
struct HashLevel {
    uint32_t p0[3];
    float w[3];
    uint32_t res;   // vertices per axis, ceil(scale) + 1
    bool dense;     // res^3 <= T: dense index, else xor-prime hash
    bool inside[3]; // x within [0,1] on that axis (the clamp's gradient is 0 outside)

    __device__ inline HashLevel(const float* __restrict__ xp, float scale, uint32_t table_size) {
        res = (uint32_t)ceilf(scale) + 1u;
        dense = (uint64_t)res * res * res <= (uint64_t)table_size;
#pragma unroll
        for (int a = 0; a < 3; a++) {
            float xa = xp[a];
            inside[a] = xa >= 0.f && xa <= 1.f;
            xa = fminf(fmaxf(xa, 0.f), 1.f);
            float pos = __fadd_rn(__fmul_rn(xa, scale), 0.5f);
            float fl = floorf(pos);
            p0[a] = (uint32_t)fl;
            w[a] = __fadd_rn(pos, -fl);
        }
    }

    // Table row of corner c = 4*cx + 2*cy + cz (uint32 arithmetic, as in the design).
    __device__ inline uint32_t row(int c, uint32_t table_size) const {
        uint32_t vx = p0[0] + ((c >> 2) & 1), vy = p0[1] + ((c >> 1) & 1), vz = p0[2] + (c & 1);
        uint32_t idx = dense ? vx + vy * res + vz * res * res
                             : (vx * 1u) ^ (vy * 2654435761u) ^ (vz * 805459861u);
        return idx % table_size;
    }

    // Trilinear weight of corner c: ((wx' * wy') * wz'), each factor w or 1-w, in the reference's order.
    __device__ inline float weight(int c) const {
        float fx = (c >> 2) & 1 ? w[0] : 1.f - w[0];
        float fy = (c >> 1) & 1 ? w[1] : 1.f - w[1];
        float fz = c & 1 ? w[2] : 1.f - w[2];
        return __fmul_rn(__fmul_rn(fx, fy), fz);
    }

    // d weight(c) / d pos_a (multiply by scale for d/dx_a).
    __device__ inline void weight_grad(int c, float g[3]) const {
        float f[3], s[3];
#pragma unroll
        for (int a = 0; a < 3; a++) {
            bool hi = (c >> (2 - a)) & 1;
            f[a] = hi ? w[a] : 1.f - w[a];
            s[a] = hi ? 1.f : -1.f;
        }
        g[0] = s[0] * f[1] * f[2];
        g[1] = f[0] * s[1] * f[2];
        g[2] = f[0] * f[1] * s[2];
    }
};

// Forward: out[n, l*F + f] = sum_c weight_c * table[l, row_c, f] for l < n_active, else 0.
template <typename T, int F>
static __global__ void hash_encode_forward_kernel(const float* __restrict__ x, const T* __restrict__ table,
                                           const float* __restrict__ scales, float* __restrict__ out,
                                           uint32_t n_points, uint32_t n_levels, uint32_t table_size,
                                           uint32_t n_active) {
    const uint32_t n = blockIdx.x * blockDim.x + threadIdx.x;
    const uint32_t l = blockIdx.y;
    if (n >= n_points) return;
    float acc[F];
#pragma unroll
    for (int f = 0; f < F; f++) acc[f] = 0.f;
    if (l < n_active) {
        HashLevel lv(x + 3 * (uint64_t)n, scales[l], table_size);
        const T* level_table = table + (uint64_t)l * table_size * F;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            float wc = lv.weight(c);
            float v[F];
            VecLoad<T, F>::load(level_table + (uint64_t)lv.row(c, table_size) * F, v);
#pragma unroll
            for (int f = 0; f < F; f++) acc[f] += wc * v[f];
        }
    }
    float* o = out + (uint64_t)n * n_levels * F + (uint64_t)l * F;
#pragma unroll
    for (int f = 0; f < F; f++) o[f] = acc[f];
}

// Backward: grad_table[l, row_c, f] += weight_c * dout[n, l*F+f] (fp32 atomics), and with NEED_DX
// dx[n, a] += scale_l * sum_c d weight_c/d pos_a * sum_f dout[n, l*F+f] * table[l, row_c, f]  (0 outside [0,1]).
template <typename T, int F, bool NEED_DX>
static __global__ void hash_encode_backward_kernel(const float* __restrict__ x, const T* __restrict__ table,
                                            const float* __restrict__ scales, const float* __restrict__ dout,
                                            float* __restrict__ grad_table, float* __restrict__ dx,
                                            uint32_t n_points, uint32_t n_levels, uint32_t table_size,
                                            uint32_t n_active) {
    const uint32_t n = blockIdx.x * blockDim.x + threadIdx.x;
    const uint32_t l = blockIdx.y;
    if (n >= n_points || l >= n_active) return;
    float g[F];
    VecLoad<float, F>::load(dout + (uint64_t)n * n_levels * F + (uint64_t)l * F, g);
    const float scale = scales[l];
    HashLevel lv(x + 3 * (uint64_t)n, scale, table_size);
    const uint64_t level_base = (uint64_t)l * table_size * F;
    float gx[3] = {0.f, 0.f, 0.f};
#pragma unroll
    for (int c = 0; c < 8; c++) {
        const uint64_t base = level_base + (uint64_t)lv.row(c, table_size) * F;
        const float wc = lv.weight(c);
#pragma unroll
        for (int f = 0; f < F; f++) atomicAdd(grad_table + base + f, wc * g[f]);
        if (NEED_DX) {
            float v[F];
            VecLoad<T, F>::load(table + base, v);
            float dot = 0.f;
#pragma unroll
            for (int f = 0; f < F; f++) dot += g[f] * v[f];
            float dw[3];
            lv.weight_grad(c, dw);
#pragma unroll
            for (int a = 0; a < 3; a++) gx[a] += dw[a] * dot;
        }
    }
    if (NEED_DX) {
#pragma unroll
        for (int a = 0; a < 3; a++)
            if (lv.inside[a]) atomicAdd(dx + 3 * (uint64_t)n + a, gx[a] * scale);
    }
}

}  // namespace jnerf
