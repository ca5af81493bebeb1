// Device helpers shared by every jnerf kernel family (hashgrid, volume_render, occupancy).
// Included by the family headers; nothing here is copied into them. Compiled by Jittor's nvcc with
// --use_fast_math, so code that must reproduce the Jittor-ops reference bit for bit uses the explicit
// round-to-nearest intrinsics (__fadd_rn, __fmul_rn, __fdiv_rn), which are never contracted into FMAs.
#pragma once
#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace jnerf {

// ---------------------------------------------------------------- launch helpers
constexpr int kThreads = 256;  // threads per block of every 1D launch

__host__ __device__ inline uint32_t div_up(uint64_t n, uint32_t d) { return (uint32_t)((n + d - 1) / d); }

// Blocks for n work items of kThreads each; at least 1 so that the launch configuration stays valid (the kernels
// bound-check against n, so an empty launch does nothing).
__host__ inline uint32_t n_blocks(uint64_t n) { return n == 0 ? 1u : div_up(n, kThreads); }

// Global linear thread index (64-bit: N*L can exceed 2^31 at large batches).
__device__ inline uint64_t global_index() { return (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; }

// ---------------------------------------------------------------- float / half load-store, fp32 arithmetic
__device__ inline float to_float(float v) { return v; }
__device__ inline float to_float(__half v) { return __half2float(v); }

// Load F consecutive elements of type T starting at p (aligned to F elements) into fp32 registers.
// F == 2 uses one 8-byte (float2) or 4-byte (half2) load.
template <typename T, int F> struct VecLoad {
    __device__ static inline void load(const T* __restrict__ p, float* out) {
#pragma unroll
        for (int f = 0; f < F; f++) out[f] = to_float(p[f]);
    }
};
template <> struct VecLoad<float, 2> {
    __device__ static inline void load(const float* __restrict__ p, float* out) {
        float2 v = *reinterpret_cast<const float2*>(p);
        out[0] = v.x; out[1] = v.y;
    }
};
template <> struct VecLoad<__half, 2> {
    __device__ static inline void load(const __half* __restrict__ p, float* out) {
        float2 v = __half22float2(*reinterpret_cast<const __half2*>(p));
        out[0] = v.x; out[1] = v.y;
    }
};

// ---------------------------------------------------------------- boxes, rays, cells
struct Box {
    float lo[3];     // bbox_min, float32 [3]
    float hi[3];     // bbox_max, float32 [3]
    float scale[3];  // cells per unit length: float32(R / float32(hi - lo)) per axis, computed on the host
    int res;         // cells per axis R
};

// Slab test as in jnerf.ops.occupancy.reference.ray_aabb_intersect: direction components with |d| < 1e-9 are
// replaced by +1e-9; t_near is raised to near_min; returns hit = t_far > t_near.
__device__ inline bool ray_box(const float o[3], const float d[3], const Box& box, float near_min,
                               float& t_near, float& t_far) {
    float tn = -INFINITY, tf = INFINITY;
#pragma unroll
    for (int a = 0; a < 3; a++) {
        float da = fabsf(d[a]) < 1e-9f ? 1e-9f : d[a];
        float t0 = __fdiv_rn(__fadd_rn(box.lo[a], -o[a]), da);
        float t1 = __fdiv_rn(__fadd_rn(box.hi[a], -o[a]), da);
        tn = fmaxf(tn, fminf(t0, t1));
        tf = fminf(tf, fmaxf(t0, t1));
    }
    t_near = fmaxf(tn, near_min);
    t_far = tf;
    return t_far > t_near;
}

// Flat cell index ix*R*R + iy*R + iz of point p; points outside the box go to the nearest cell.
__device__ inline int cell_index(const float p[3], const Box& box) {
    int ijk[3];
#pragma unroll
    for (int a = 0; a < 3; a++) {
        float c = floorf(__fmul_rn(__fadd_rn(p[a], -box.lo[a]), box.scale[a]));
        int i = (int)fminf(fmaxf(c, -1.f), (float)box.res);  // bounded before the int cast (no overflow UB)
        ijk[a] = min(max(i, 0), box.res - 1);
    }
    return (ijk[0] * box.res + ijk[1]) * box.res + ijk[2];
}

}  // namespace jnerf
