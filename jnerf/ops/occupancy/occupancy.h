// Occupancy-grid kernels: packed ray marching (count, then fill) and visual-hull carving.
// CPU reference and semantics: jnerf/ops/occupancy/reference.py. The arithmetic that decides which samples exist
// (slab test, sample positions, cell lookup, projections) uses round-to-nearest intrinsics, operation for
// operation as the reference's float32 ops, so both paths pick the same samples.
//
// Shapes: rays_o, rays_d [R,3] f32; occupied [G^3] bool/uint8 (G cells per axis, index ix*G*G + iy*G + iz);
// jitter [R] f32 or absent (0.5); counts [R] i32; packed_info [R,2] i32 (first, count);
// ray_indices [S] i32; t_starts, t_ends [S] f32;
// views [V, 21] f32 (per view: world-to-camera rotation 3x3 row-major, translation 3, intrinsics 3x3 row-major);
// background [V, H, W] uint8 (1 = background pixel); occupied_out [G^3] bool.
#pragma once
#include "jnerf/ops/common.h"  // from the package root: Jittor has its own src/common.h

namespace jnerf {

struct MarchParams {
    Box box;
    float step;       // float32(step_size)
    float half_step;  // float32(0.5 * step_size)
    float near_min;
    int max_steps;
};

// Walk ray r's candidate samples; calls emit(t_start, t_end) for every kept one, in order of t.
template <typename Occ, typename Emit>
__device__ inline void march_ray(const float* __restrict__ rays_o, const float* __restrict__ rays_d,
                                 const Occ* __restrict__ occupied, float jitter, uint64_t r,
                                 const MarchParams& p, Emit emit) {
    float o[3], d[3];
#pragma unroll
    for (int a = 0; a < 3; a++) { o[a] = rays_o[3 * r + a]; d[a] = rays_d[3 * r + a]; }
    float t_near, t_far;
    if (!ray_box(o, d, p.box, p.near_min, t_near, t_far)) return;
    for (int i = 0; i < p.max_steps; i++) {
        // t = t_near + (i + jitter) * step
        const float t = __fadd_rn(t_near, __fmul_rn(__fadd_rn((float)i, jitter), p.step));
        if (!(t < t_far)) break;
        const float t0 = fmaxf(__fadd_rn(t, -p.half_step), t_near);
        const float t1 = fminf(__fadd_rn(t, p.half_step), t_far);
        const float mid = __fmul_rn(0.5f, __fadd_rn(t0, t1));
        float x[3];
#pragma unroll
        for (int a = 0; a < 3; a++) x[a] = __fadd_rn(o[a], __fmul_rn(d[a], mid));
        if (occupied[cell_index(x, p.box)]) emit(t0, t1);
    }
}

// Pass 1: counts[r] = number of kept samples of ray r.
template <typename Occ, bool HAS_JITTER>
static __global__ void march_count_kernel(const float* __restrict__ rays_o, const float* __restrict__ rays_d,
                                          const Occ* __restrict__ occupied, const float* __restrict__ jitter,
                                          int* __restrict__ counts, uint32_t n_rays, MarchParams p) {
    const uint64_t r = global_index();
    if (r >= n_rays) return;
    int count = 0;
    march_ray(rays_o, rays_d, occupied, HAS_JITTER ? jitter[r] : 0.5f, r, p,
              [&](float, float) { count++; });
    counts[r] = count;
}

// Pass 2: write ray r's kept samples at packed_info[r].first onwards.
template <typename Occ, bool HAS_JITTER>
static __global__ void march_fill_kernel(const float* __restrict__ rays_o, const float* __restrict__ rays_d,
                                         const Occ* __restrict__ occupied, const float* __restrict__ jitter,
                                         const int* __restrict__ packed_info, int* __restrict__ ray_indices,
                                         float* __restrict__ t_starts, float* __restrict__ t_ends,
                                         uint32_t n_rays, MarchParams p) {
    const uint64_t r = global_index();
    if (r >= n_rays) return;
    int k = packed_info[2 * r];
    march_ray(rays_o, rays_d, occupied, HAS_JITTER ? jitter[r] : 0.5f, r, p,
              [&](float t0, float t1) {
                  ray_indices[k] = (int)r;
                  t_starts[k] = t0;
                  t_ends[k] = t1;
                  k++;
              });
}

// Does view v see point x on a background pixel? (in front, inside the frame; nearest pixel, centres at integers)
__device__ inline bool sees_background(const float x[3], const float* __restrict__ view,
                                       const unsigned char* __restrict__ background, int height, int width) {
    const float* rot = view;        // [3,3] world-to-camera rotation
    const float* trans = view + 9;  // [3]
    const float* K = view + 12;     // [3,3]
    float cam[3], pix[3];
#pragma unroll
    for (int k = 0; k < 3; k++)
        cam[k] = __fadd_rn(__fadd_rn(__fadd_rn(__fmul_rn(x[0], rot[3 * k]), __fmul_rn(x[1], rot[3 * k + 1])),
                                     __fmul_rn(x[2], rot[3 * k + 2])), trans[k]);
#pragma unroll
    for (int k = 0; k < 3; k++)
        pix[k] = __fadd_rn(__fadd_rn(__fmul_rn(cam[0], K[3 * k]), __fmul_rn(cam[1], K[3 * k + 1])),
                           __fmul_rn(cam[2], K[3 * k + 2]));
    if (!(pix[2] > 1e-6f)) return false;
    const float col = floorf(__fadd_rn(__fdiv_rn(pix[0], pix[2]), 0.5f));
    const float row = floorf(__fadd_rn(__fdiv_rn(pix[1], pix[2]), 0.5f));
    if (!(col >= 0.f && col < (float)width && row >= 0.f && row < (float)height)) return false;
    return background[(uint64_t)row * width + (uint64_t)col] != 0;
}

// Lattice point lo + ((i + offset) * extent) / res on every axis, in float32 as the reference's numpy computes it.
__device__ inline void lattice_point(int ix, int iy, int iz, float offset, const float lo[3],
                                     const float extent[3], float res, float x[3]) {
    const int ijk[3] = {ix, iy, iz};
#pragma unroll
    for (int a = 0; a < 3; a++)
        x[a] = __fadd_rn(lo[a], __fdiv_rn(__fmul_rn(__fadd_rn((float)ijk[a], offset), extent[a]), res));
}

// One thread per cell: occupied_out = (number of views that see the centre, and with USE_CORNERS all 8 corners,
// on background) < min_background_views.
template <bool USE_CORNERS>
static __global__ void carve_kernel(const float* __restrict__ views, const unsigned char* __restrict__ background,
                                    bool* __restrict__ occupied_out, int n_views, int height, int width, int res,
                                    float lo_x, float lo_y, float lo_z, float ext_x, float ext_y, float ext_z,
                                    int min_background_views) {
    const uint64_t cidx = global_index();
    const uint64_t n_cells = (uint64_t)res * res * res;
    if (cidx >= n_cells) return;
    const int ix = (int)(cidx / ((uint64_t)res * res)), iy = (int)((cidx / res) % res), iz = (int)(cidx % res);
    const float lo[3] = {lo_x, lo_y, lo_z}, ext[3] = {ext_x, ext_y, ext_z};
    const float fres = (float)res;
    float centre[3];
    lattice_point(ix, iy, iz, 0.5f, lo, ext, fres, centre);
    int votes = 0;
    for (int v = 0; v < n_views && votes < min_background_views; v++) {
        const float* view = views + 21 * (uint64_t)v;
        const unsigned char* bg = background + (uint64_t)v * height * width;
        bool seen = sees_background(centre, view, bg, height, width);
        if (USE_CORNERS) {
            for (int c = 0; c < 8 && seen; c++) {
                float corner[3];
                lattice_point(ix + ((c >> 2) & 1), iy + ((c >> 1) & 1), iz + (c & 1), 0.f, lo, ext,
                              fres, corner);
                seen = sees_background(corner, view, bg, height, width);
            }
        }
        votes += seen ? 1 : 0;
    }
    occupied_out[cidx] = votes < min_background_views;
}

}  // namespace jnerf
