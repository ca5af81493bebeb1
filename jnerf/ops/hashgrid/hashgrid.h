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
//
// Stencil kernels (the SDF's numerical gradient, reference: hash_encode_stencil_reference): the 7 points x,
// x +- h e_a are encoded by one thread per (centre point, level), as if the 7N points had been concatenated
// entry by entry (out row k*N + n for entry k). With h at most one cell of every active level, an offset point
// lies in the centre's cell or the next one along its axis, so it shares all 8 or 4 of the centre's corners:
// the thread gathers (forward) and scatters (backward) those once, which cuts the table traffic and the atomics
// from 56 to 8 + 4 per offset point that left the cell.
// The tetrahedral stencil (x and x + h k_i for the 4 vertices k_i in {-1,1}^3 of TetrahedralStencil, reference:
// STENCILS["tetrahedral"]) has kernels of the same layout: an offset point moves on all three axes, so it shares a
// centre corner wherever its own corner's vertex equals one of the centre cell's (8 at the coarse levels, 1 to 8 at
// the finest), found by comparing the cells' lower vertices axis by axis.
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

// grad[0..F) += v[0..F) with fp32 atomics: one 8-byte vector atomic for F == 2 on sm_90+ (CUDA's float2
// atomicAdd, global memory), which halves the atomic operations of the backward passes.
template <int F> struct AtomicAddFeatures {
    __device__ static inline void add(float* grad, const float* v) {
#pragma unroll
        for (int f = 0; f < F; f++) atomicAdd(grad + f, v[f]);
    }
};
template <> struct AtomicAddFeatures<2> {
    __device__ static inline void add(float* grad, const float* v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        atomicAdd(reinterpret_cast<float2*>(grad), make_float2(v[0], v[1]));
#else
        atomicAdd(grad, v[0]);
        atomicAdd(grad + 1, v[1]);
#endif
    }
};

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
        float gc[F];
#pragma unroll
        for (int f = 0; f < F; f++) gc[f] = wc * g[f];
        AtomicAddFeatures<F>::add(grad_table + base, gc);
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

// ------------------------------------------------------------------------------------------------ stencil
// Stencil entry k in 0..6: centre, +x, -x, +y, -y, +z, -z. Entry k > 0 moves axis (k-1)/2 by +h (k odd) or -h.
// The offset coordinate is x_a + (+-h) rounded once, as the reference's x + offsets; the other axes are x's own,
// so an offset point's setup equals the centre's on them.
__device__ inline void stencil_point(const float* __restrict__ xp, int k, float h, float p[3]) {
    p[0] = xp[0]; p[1] = xp[1]; p[2] = xp[2];
    if (k > 0) {
        const int a = (k - 1) >> 1;
        p[a] = __fadd_rn(p[a], (k & 1) ? h : -h);
    }
}

// Fully unrolled below (k and c compile-time), so the centre's corner arrays are indexed statically and stay in
// registers: an offset point whose cell moved by delta along axis a reuses centre corner c when delta == 0,
// c | bit for its low-side corners when delta == +1, c & ~bit for its high-side corners when delta == -1
// (bit = 1 << (2-a), corner c = 4*cx + 2*cy + cz); its other corners are its own.

// Forward of the 7-point stencil: out[k*N + n, l*F + f] = hash encoding of stencil point k of x[n] at level l
// (0 for l >= n_active).
template <typename T, int F>
static __global__ void hash_encode_stencil_forward_kernel(const float* __restrict__ x, const T* __restrict__ table,
                                                          const float* __restrict__ scales, float* __restrict__ out,
                                                          uint32_t n_points, uint32_t n_levels, uint32_t table_size,
                                                          uint32_t n_active, float h) {
    const uint32_t n = blockIdx.x * blockDim.x + threadIdx.x;
    const uint32_t l = blockIdx.y;
    if (n >= n_points) return;
    const uint64_t row_stride = (uint64_t)n_levels * F;
    if (l >= n_active) {
#pragma unroll
        for (int k = 0; k < 7; k++) {
            float* o = out + ((uint64_t)k * n_points + n) * row_stride + (uint64_t)l * F;
#pragma unroll
            for (int f = 0; f < F; f++) o[f] = 0.f;
        }
        return;
    }
    const float scale = scales[l];
    const T* level_table = table + (uint64_t)l * table_size * F;
    const float* xp = x + 3 * (uint64_t)n;
    HashLevel centre(xp, scale, table_size);
    float v[8][F];  // the centre cell's corner features
#pragma unroll
    for (int c = 0; c < 8; c++) VecLoad<T, F>::load(level_table + (uint64_t)centre.row(c, table_size) * F, v[c]);
#pragma unroll
    for (int k = 0; k < 7; k++) {
        const int a = k > 0 ? (k - 1) >> 1 : 0, bit = 1 << (2 - a);
        float p[3];
        stencil_point(xp, k, h, p);
        HashLevel lv(p, scale, table_size);
        const int delta = (int)lv.p0[a] - (int)centre.p0[a];
        float acc[F];
#pragma unroll
        for (int f = 0; f < F; f++) acc[f] = 0.f;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            float vc[F];
            const bool high = c & bit;
            if (delta == 0) {
#pragma unroll
                for (int f = 0; f < F; f++) vc[f] = v[c][f];
            } else if (delta == 1 && !high) {
#pragma unroll
                for (int f = 0; f < F; f++) vc[f] = v[c | bit][f];
            } else if (delta == -1 && high) {
#pragma unroll
                for (int f = 0; f < F; f++) vc[f] = v[c & ~bit][f];
            } else {
                VecLoad<T, F>::load(level_table + (uint64_t)lv.row(c, table_size) * F, vc);
            }
            const float wc = lv.weight(c);
#pragma unroll
            for (int f = 0; f < F; f++) acc[f] += wc * vc[f];
        }
        float* o = out + ((uint64_t)k * n_points + n) * row_stride + (uint64_t)l * F;
#pragma unroll
        for (int f = 0; f < F; f++) o[f] = acc[f];
    }
}

// Backward of the stencil (table gradient only; a caller that needs d/dx uses the plain kernels on the 7N
// points): the centre cell's 8 corners collect every stencil point's share in registers and are scattered once.
template <int F>
static __global__ void hash_encode_stencil_backward_kernel(const float* __restrict__ x,
                                                           const float* __restrict__ scales,
                                                           const float* __restrict__ dout,
                                                           float* __restrict__ grad_table, uint32_t n_points,
                                                           uint32_t n_levels, uint32_t table_size,
                                                           uint32_t n_active, float h) {
    const uint32_t n = blockIdx.x * blockDim.x + threadIdx.x;
    const uint32_t l = blockIdx.y;
    if (n >= n_points || l >= n_active) return;
    const uint64_t row_stride = (uint64_t)n_levels * F;
    const float scale = scales[l];
    float* level_grad = grad_table + (uint64_t)l * table_size * F;
    const float* xp = x + 3 * (uint64_t)n;
    HashLevel centre(xp, scale, table_size);
    float acc[8][F];
#pragma unroll
    for (int c = 0; c < 8; c++)
#pragma unroll
        for (int f = 0; f < F; f++) acc[c][f] = 0.f;
#pragma unroll
    for (int k = 0; k < 7; k++) {
        const int a = k > 0 ? (k - 1) >> 1 : 0, bit = 1 << (2 - a);
        float g[F];
        VecLoad<float, F>::load(dout + ((uint64_t)k * n_points + n) * row_stride + (uint64_t)l * F, g);
        float p[3];
        stencil_point(xp, k, h, p);
        HashLevel lv(p, scale, table_size);
        const int delta = (int)lv.p0[a] - (int)centre.p0[a];
#pragma unroll
        for (int c = 0; c < 8; c++) {
            const float wc = lv.weight(c);
            const bool high = c & bit;
            float gc[F];
#pragma unroll
            for (int f = 0; f < F; f++) gc[f] = wc * g[f];
            if (delta == 0) {
#pragma unroll
                for (int f = 0; f < F; f++) acc[c][f] += gc[f];
            } else if (delta == 1 && !high) {
#pragma unroll
                for (int f = 0; f < F; f++) acc[c | bit][f] += gc[f];
            } else if (delta == -1 && high) {
#pragma unroll
                for (int f = 0; f < F; f++) acc[c & ~bit][f] += gc[f];
            } else {
                AtomicAddFeatures<F>::add(level_grad + (uint64_t)lv.row(c, table_size) * F, gc);
            }
        }
    }
#pragma unroll
    for (int c = 0; c < 8; c++)
        AtomicAddFeatures<F>::add(level_grad + (uint64_t)centre.row(c, table_size) * F, acc[c]);
}

// ------------------------------------------------------------------------------------ tetrahedral stencil
// Entry k in 0..4: the centre, then (1,-1,-1), (-1,-1,1), (-1,1,-1), (1,1,1) times h (reference.py's TETRAHEDRON).
struct TetrahedralStencil {
    static constexpr int K = 5;
    __host__ __device__ static constexpr int step(int k, int a) {
        return k == 0 ? 0 : k == 4 ? 1 : k == 1 ? (a == 0 ? 1 : -1) : k == 2 ? (a == 2 ? 1 : -1) : (a == 1 ? 1 : -1);
    }
};

// Stencil point k of xp: x_a + (+-h) rounded once on each moved axis, as the reference's x + h * steps.
template <typename S>
__device__ inline void offset_point(const float* __restrict__ xp, int k, float h, float p[3]) {
#pragma unroll
    for (int a = 0; a < 3; a++) {
        const int s = S::step(k, a);
        p[a] = s == 0 ? xp[a] : __fadd_rn(xp[a], s > 0 ? h : -h);
    }
}

// The centre corner that corner c of the offset point's cell is, or -1: per axis the offset cell's lower vertex
// moved by delta_a, so its corner bit b_a is the centre's bit b_a + delta_a when that is 0 or 1.
__device__ inline int shared_corner(int c, const int delta[3]) {
    int centre_corner = 0;
#pragma unroll
    for (int a = 0; a < 3; a++) {
        const int bit = ((c >> (2 - a)) & 1) + delta[a];
        if (bit < 0 || bit > 1) return -1;
        centre_corner |= bit << (2 - a);
    }
    return centre_corner;
}

// Forward: out[k*N + n, l*F + f] = hash encoding of stencil point k of x[n] at level l (0 for l >= n_active).
// The centre's 8 corner features stay in registers; a shared corner is picked from them by a compare-select
// over the 8 (a dynamic register index would spill them to local memory).
template <typename T, int F, typename S>
static __global__ void hash_encode_offsets_forward_kernel(const float* __restrict__ x, const T* __restrict__ table,
                                                          const float* __restrict__ scales, float* __restrict__ out,
                                                          uint32_t n_points, uint32_t n_levels, uint32_t table_size,
                                                          uint32_t n_active, float h) {
    const uint32_t n = blockIdx.x * blockDim.x + threadIdx.x;
    const uint32_t l = blockIdx.y;
    if (n >= n_points) return;
    const uint64_t row_stride = (uint64_t)n_levels * F;
    if (l >= n_active) {
#pragma unroll
        for (int k = 0; k < S::K; k++) {
            float* o = out + ((uint64_t)k * n_points + n) * row_stride + (uint64_t)l * F;
#pragma unroll
            for (int f = 0; f < F; f++) o[f] = 0.f;
        }
        return;
    }
    const float scale = scales[l];
    const T* level_table = table + (uint64_t)l * table_size * F;
    const float* xp = x + 3 * (uint64_t)n;
    HashLevel centre(xp, scale, table_size);
    float v[8][F];
#pragma unroll
    for (int c = 0; c < 8; c++) VecLoad<T, F>::load(level_table + (uint64_t)centre.row(c, table_size) * F, v[c]);
#pragma unroll
    for (int k = 0; k < S::K; k++) {
        float p[3];
        offset_point<S>(xp, k, h, p);
        HashLevel lv(p, scale, table_size);
        int delta[3];
#pragma unroll
        for (int a = 0; a < 3; a++) delta[a] = (int)lv.p0[a] - (int)centre.p0[a];
        float acc[F];
#pragma unroll
        for (int f = 0; f < F; f++) acc[f] = 0.f;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            const int shared = shared_corner(c, delta);
            float vc[F];
            if (shared >= 0) {
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    if (j == shared) {
#pragma unroll
                        for (int f = 0; f < F; f++) vc[f] = v[j][f];
                    }
                }
            } else {
                VecLoad<T, F>::load(level_table + (uint64_t)lv.row(c, table_size) * F, vc);
            }
            const float wc = lv.weight(c);
#pragma unroll
            for (int f = 0; f < F; f++) acc[f] += wc * vc[f];
        }
        float* o = out + ((uint64_t)k * n_points + n) * row_stride + (uint64_t)l * F;
#pragma unroll
        for (int f = 0; f < F; f++) o[f] = acc[f];
    }
}

// Backward (table gradient only): the centre cell's 8 corners collect the shares of every stencil point that
// meets them in registers and are scattered once; an offset point's other corners get their own atomics.
template <int F, typename S>
static __global__ void hash_encode_offsets_backward_kernel(const float* __restrict__ x,
                                                           const float* __restrict__ scales,
                                                           const float* __restrict__ dout,
                                                           float* __restrict__ grad_table, uint32_t n_points,
                                                           uint32_t n_levels, uint32_t table_size,
                                                           uint32_t n_active, float h) {
    const uint32_t n = blockIdx.x * blockDim.x + threadIdx.x;
    const uint32_t l = blockIdx.y;
    if (n >= n_points || l >= n_active) return;
    const uint64_t row_stride = (uint64_t)n_levels * F;
    const float scale = scales[l];
    float* level_grad = grad_table + (uint64_t)l * table_size * F;
    const float* xp = x + 3 * (uint64_t)n;
    HashLevel centre(xp, scale, table_size);
    float acc[8][F];
#pragma unroll
    for (int c = 0; c < 8; c++)
#pragma unroll
        for (int f = 0; f < F; f++) acc[c][f] = 0.f;
#pragma unroll
    for (int k = 0; k < S::K; k++) {
        float g[F];
        VecLoad<float, F>::load(dout + ((uint64_t)k * n_points + n) * row_stride + (uint64_t)l * F, g);
        float p[3];
        offset_point<S>(xp, k, h, p);
        HashLevel lv(p, scale, table_size);
        int delta[3];
#pragma unroll
        for (int a = 0; a < 3; a++) delta[a] = (int)lv.p0[a] - (int)centre.p0[a];
#pragma unroll
        for (int c = 0; c < 8; c++) {
            const float wc = lv.weight(c);
            float gc[F];
#pragma unroll
            for (int f = 0; f < F; f++) gc[f] = wc * g[f];
            const int shared = shared_corner(c, delta);
            if (shared >= 0) {
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    if (j == shared) {
#pragma unroll
                        for (int f = 0; f < F; f++) acc[j][f] += gc[f];
                    }
                }
            } else {
                AtomicAddFeatures<F>::add(level_grad + (uint64_t)lv.row(c, table_size) * F, gc);
            }
        }
    }
#pragma unroll
    for (int c = 0; c < 8; c++)
        AtomicAddFeatures<F>::add(level_grad + (uint64_t)centre.row(c, table_size) * F, acc[c]);
}

}  // namespace jnerf
