// Fully fused MLP kernels (forward for training/inference, backward to the input and the per-layer pre-activations).
//
// Design (after the tiny-cuda-nn paper's description, code written here): one thread block owns ROWS consecutive
// rows of the batch and runs the whole network on them. The rows' activations stay in shared memory as fp16,
// ping-ponging between two buffers from layer to layer; every matrix product runs on tensor cores through WMMA
// (16x16x16, fp16 operands, fp32 accumulation). Each warp owns one 16-wide column tile of a layer's output at a
// time and keeps that tile's weight fragments in registers while it walks over the block's 16-row tiles. The fp32
// accumulator tile is staged in a per-warp shared buffer so that the epilogue (bias in fp32, activation, fp16
// store) knows each element's row and column.
//
// Shapes (all row-major; n = batch rows, L = number of linear layers, W = hidden width, IN_PAD/OUT_PAD = input and
// output widths rounded up to 16):
//   x        [n, n_in]            float32   network input
//   weights  packed                 float16   W_0 [W, IN_PAD] | W_1..W_{L-2} [W, W] | W_{L-1} [OUT_PAD, W]
//                                             (nn.Linear layout [out, in]; padding columns/rows are zero)
//   biases   packed                 float32   b_0..b_{L-2} [W] | b_{L-1} [OUT_PAD] (padding zero)
//   y        [n, n_out]           float32   network output (after the output activation)
//   hidden   [L-1, n, W]            float16   post-activation hidden layers (saved for backward; training only)
//   dz_out   [n, n_out]           float32   gradient w.r.t. the output layer's pre-activation
//   scale    [1]                    float32   gradient scale (keeps fp16 gradients out of the subnormal range)
//   dz_hid   [L-1, n, W]            float16   scale * gradient w.r.t. each hidden layer's pre-activation
//   dx       [n, n_in]            float32   gradient w.r.t. x (unscaled)
#pragma once
#include <cuda_fp16.h>
#include <mma.h>
#include <cstdint>

namespace jnerf_ffmlp {

using namespace nvcuda;

enum { ACT_NONE = 0, ACT_RELU = 1, ACT_SOFTPLUS = 2 };
enum { OUT_NONE = 0, OUT_SIGMOID = 1 };

// fp16 elements of padding after every shared-memory row: 16 bytes, which shifts consecutive rows across banks and
// keeps every 16x16 tile 32-byte aligned (WMMA's requirement) for any width that is a multiple of 16.
constexpr int SKEW = 8;

template <int A, int B> struct cmax { static constexpr int value = A > B ? A : B; };

template <bool COL> struct BLayout { using type = wmma::row_major; };
template <> struct BLayout<true> { using type = wmma::col_major; };

template <int W, int IN_PAD, int OUT_PAD, int ROWS>
struct Cfg {
    static constexpr int NWARPS = W / 16;                                         // one warp per 16 output columns
    static constexpr int THREADS = NWARPS * 32;
    static constexpr int MAXW = cmax<cmax<W, IN_PAD>::value, OUT_PAD>::value;
    static constexpr int BUF = ROWS * (MAXW + SKEW);                              // fp16 elements per buffer
    static constexpr size_t SMEM = 2 * BUF * sizeof(__half) + NWARPS * 256 * sizeof(float);
};

// One layer on the block's rows: out[r, c] = sum_k in[r, k] * B[k, c], B = W^T (forward, W [N, K] row-major read
// as a col-major K x N matrix) or B = W (backward, W [K, N] row-major). in_s: shared [ROWS, K+SKEW] fp16.
// epi(row_in_block, col0, v) receives 8 consecutive fp32 results v[0..7] of one row (cols col0..col0+7).
template <int K, int N, int NWARPS, bool FWD, class Epi>
__device__ __forceinline__ void mlp_layer(const __half* __restrict__ in_s, const __half* __restrict__ w,
                                          float* __restrict__ stage, int row_tiles, Epi epi) {
    constexpr int KT = K / 16, NT = N / 16;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, typename BLayout<FWD>::type> bf[KT];
    int cur_c = -1;
    for (int t = warp; t < NT * row_tiles; t += NWARPS) {
        const int c = t % NT, r = t / NT;
        if (c != cur_c) {
#pragma unroll
            for (int kt = 0; kt < KT; ++kt) {
                const __half* p = FWD ? w + (c * 16) * K + kt * 16 : w + (kt * 16) * N + c * 16;
                wmma::load_matrix_sync(bf[kt], p, FWD ? K : N);
            }
            cur_c = c;
        }
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> af;
            wmma::load_matrix_sync(af, in_s + (r * 16) * (K + SKEW) + kt * 16, K + SKEW);
            wmma::mma_sync(acc, af, bf[kt], acc);
        }
        wmma::store_matrix_sync(stage, acc, 16, wmma::mem_row_major);
        __syncwarp();
        const int rr = lane >> 1, cc = (lane & 1) * 8;
        epi(r * 16 + rr, c * 16 + cc, stage + rr * 16 + cc);
        __syncwarp();
    }
}

__device__ __forceinline__ void store8_half(__half* dst, const float* v) {  // dst 16-byte aligned
    __align__(16) __half2 h[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) h[j] = __floats2half2_rn(v[2 * j], v[2 * j + 1]);
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(h);
}

__device__ __forceinline__ void load8_half(const __half* src, float* v) {  // src 16-byte aligned
    uint4 raw = *reinterpret_cast<const uint4*>(src);
    const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        float2 f = __half22float2(h[j]);
        v[2 * j] = f.x;
        v[2 * j + 1] = f.y;
    }
}

template <int ACT>
__device__ __forceinline__ float act_fwd(float z, float beta) {
    if (ACT == ACT_RELU) return fmaxf(z, 0.0f);
    if (ACT == ACT_SOFTPLUS) {
        // as jnerf's MLP: relu(z) + log(1 + exp(-beta |z|)) / beta (no overflow, exact linear part)
        return fmaxf(z, 0.0f) + log1pf(expf(-beta * fabsf(z))) / beta;
    }
    return z;
}

// Derivative of the hidden activation from its (fp16-stored) output h: ReLU: h > 0; Softplus: sigmoid(beta z) =
// 1 - exp(-beta h) (an exact identity for h = softplus(z)).
template <int ACT>
__device__ __forceinline__ float act_bwd(float h, float beta) {
    if (ACT == ACT_RELU) return h > 0.0f ? 1.0f : 0.0f;
    if (ACT == ACT_SOFTPLUS) return -expm1f(-beta * h);
    return 1.0f;
}

// Copy rows [row0, row0+ROWS) of a float32 [n, cols] matrix, times mul, into shared fp16 [ROWS, COLS_PAD+SKEW],
// zero-filling padding rows and columns.
template <int COLS_PAD, int ROWS, int THREADS>
__device__ __forceinline__ void load_rows(__half* dst, const float* __restrict__ src, int row0, int n, int cols,
                                          float mul) {
    for (int i = threadIdx.x; i < ROWS * COLS_PAD; i += THREADS) {
        const int r = i / COLS_PAD, c = i - r * COLS_PAD, g = row0 + r;
        const float v = (g < n && c < cols) ? src[(size_t)g * cols + c] * mul : 0.0f;
        dst[r * (COLS_PAD + SKEW) + c] = __float2half_rn(v);
    }
}

// Forward. grid = ceil(n / ROWS) blocks of Cfg::THREADS threads, Cfg::SMEM bytes of dynamic shared memory.
// hidden may be null (inference).
template <int W, int IN_PAD, int OUT_PAD, int ROWS, int ACT, int OUT_ACT, bool SAVE>
__global__ void __launch_bounds__(Cfg<W, IN_PAD, OUT_PAD, ROWS>::THREADS)
ffmlp_forward(const float* __restrict__ x, int n, int n_in, int n_layers, const __half* __restrict__ weights,
              const float* __restrict__ biases, float beta, float* __restrict__ y, int n_out,
              __half* __restrict__ hidden) {
    using C = Cfg<W, IN_PAD, OUT_PAD, ROWS>;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    __half* buf0 = reinterpret_cast<__half*>(smem_raw);
    __half* buf1 = buf0 + C::BUF;
    float* stage = reinterpret_cast<float*>(buf1 + C::BUF) + (threadIdx.x >> 5) * 256;
    const int row0 = blockIdx.x * ROWS;
    const int rows = min(ROWS, n - row0);
    const int row_tiles = (rows + 15) / 16;

    load_rows<IN_PAD, ROWS, C::THREADS>(buf0, x, row0, n, n_in, 1.0f);
    __syncthreads();

    auto out_epi = [&](const float* __restrict__ b) {
        return [=](int r, int c0, const float* v) {
            const int g = row0 + r;
            if (g >= n) return;
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const int c = c0 + j;
                if (c < n_out) {
                    float o = v[j] + b[c];
                    if (OUT_ACT == OUT_SIGMOID) o = 1.0f / (1.0f + expf(-o));
                    y[(size_t)g * n_out + c] = o;
                }
            }
        };
    };
    auto hid_epi = [&](__half* out_s, const float* __restrict__ b, __half* save) {
        return [=](int r, int c0, const float* v) {
            float a[8];
            const int g = row0 + r;
#pragma unroll
            for (int j = 0; j < 8; ++j) a[j] = g < n ? act_fwd<ACT>(v[j] + b[c0 + j], beta) : 0.0f;
            store8_half(out_s + r * (W + SKEW) + c0, a);
            if (SAVE && g < n) store8_half(save + (size_t)g * W + c0, a);
        };
    };

    if (n_layers == 1) {
        mlp_layer<IN_PAD, OUT_PAD, C::NWARPS, true>(buf0, weights, stage, row_tiles, out_epi(biases));
        return;
    }
    // layer 0: IN_PAD -> W
    mlp_layer<IN_PAD, W, C::NWARPS, true>(buf0, weights, stage, row_tiles,
                                          hid_epi(buf1, biases, SAVE ? hidden : nullptr));
    __syncthreads();
    const __half* w = weights + W * IN_PAD;
    __half* cur = buf1;
    __half* nxt = buf0;
    for (int l = 1; l < n_layers - 1; ++l) {
        mlp_layer<W, W, C::NWARPS, true>(cur, w, stage, row_tiles,
                                         hid_epi(nxt, biases + l * W, SAVE ? hidden + (size_t)l * n * W : nullptr));
        __syncthreads();
        w += W * W;
        __half* t = cur; cur = nxt; nxt = t;
    }
    mlp_layer<W, OUT_PAD, C::NWARPS, true>(cur, w, stage, row_tiles, out_epi(biases + (n_layers - 1) * W));
}

// Backward. Input dz_out (gradient at the output pre-activation, fp32) times *scale; writes dz_hid (scaled, fp16)
// for every hidden layer and dx (unscaled, fp32). Same launch shape as the forward.
template <int W, int IN_PAD, int OUT_PAD, int ROWS, int ACT>
__global__ void __launch_bounds__(Cfg<W, IN_PAD, OUT_PAD, ROWS>::THREADS)
ffmlp_backward(const float* __restrict__ dz_out, const float* __restrict__ scale_p, int n, int n_in,
               int n_out, int n_layers, const __half* __restrict__ weights, const __half* __restrict__ hidden,
               float beta, __half* __restrict__ dz_hid, float* __restrict__ dx) {
    using C = Cfg<W, IN_PAD, OUT_PAD, ROWS>;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    __half* buf0 = reinterpret_cast<__half*>(smem_raw);
    __half* buf1 = buf0 + C::BUF;
    float* stage = reinterpret_cast<float*>(buf1 + C::BUF) + (threadIdx.x >> 5) * 256;
    const int row0 = blockIdx.x * ROWS;
    const int rows = min(ROWS, n - row0);
    const int row_tiles = (rows + 15) / 16;
    const float scale = *scale_p;
    const float inv_scale = 1.0f / scale;

    load_rows<OUT_PAD, ROWS, C::THREADS>(buf0, dz_out, row0, n, n_out, scale);
    __syncthreads();

    auto dx_epi = [&]() {
        return [=](int r, int c0, const float* v) {
            const int g = row0 + r;
            if (g >= n) return;
#pragma unroll
            for (int j = 0; j < 8; ++j)
                if (c0 + j < n_in) dx[(size_t)g * n_in + c0 + j] = v[j] * inv_scale;
        };
    };
    // gradient through hidden layer h = hidden[l]: dz_l = dh * act'(h_l)
    auto hid_epi = [&](__half* out_s, int l) {
        const __half* h = hidden + (size_t)l * n * W;
        __half* save = dz_hid + (size_t)l * n * W;
        return [=](int r, int c0, const float* v) {
            float d[8];
            const int g = row0 + r;
            if (g < n) {
                float hv[8];
                load8_half(h + (size_t)g * W + c0, hv);
#pragma unroll
                for (int j = 0; j < 8; ++j) d[j] = v[j] * act_bwd<ACT>(hv[j], beta);
            } else {
#pragma unroll
                for (int j = 0; j < 8; ++j) d[j] = 0.0f;
            }
            store8_half(out_s + r * (W + SKEW) + c0, d);
            if (g < n) store8_half(save + (size_t)g * W + c0, d);
        };
    };

    if (n_layers == 1) {
        mlp_layer<OUT_PAD, IN_PAD, C::NWARPS, false>(buf0, weights, stage, row_tiles, dx_epi());
        return;
    }
    // output layer: W_{L-1} [OUT_PAD, W]; dh_{L-2} = dz_out @ W_{L-1}
    const __half* w = weights + W * IN_PAD + (size_t)(n_layers - 2) * W * W;
    mlp_layer<OUT_PAD, W, C::NWARPS, false>(buf0, w, stage, row_tiles, hid_epi(buf1, n_layers - 2));
    __syncthreads();
    __half* cur = buf1;
    __half* nxt = buf0;
    for (int l = n_layers - 2; l >= 1; --l) {  // W_l [W, W]: dh_{l-1} = dz_l @ W_l
        w -= W * W;
        mlp_layer<W, W, C::NWARPS, false>(cur, w, stage, row_tiles, hid_epi(nxt, l - 1));
        __syncthreads();
        __half* t = cur; cur = nxt; nxt = t;
    }
    // W_0 [W, IN_PAD]: dx = dz_0 @ W_0
    mlp_layer<W, IN_PAD, C::NWARPS, false>(cur, weights, stage, row_tiles, dx_epi());
}

// One layer's float32 weight [rows, cols] and bias [rows] (b may be null) into its slots of the packed buffers: w16
// [pad_rows, pad_cols] fp16 and b32 [pad_rows] fp32, zero in the padding. One thread per packed weight element.
__global__ void ffmlp_pack_layer(const float* __restrict__ w, const float* __restrict__ b, int rows, int cols,
                                 int pad_rows, int pad_cols, __half* __restrict__ w16, float* __restrict__ b32) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < pad_rows * pad_cols) {
        const int r = i / pad_cols, c = i - r * pad_cols;
        w16[i] = __float2half_rn(r < rows && c < cols ? w[r * cols + c] : 0.0f);
    }
    if (i < pad_rows) b32[i] = (b != nullptr && i < rows) ? b[i] : 0.0f;
}

// Weight and bias gradients of every layer from the saved activations and the backward's pre-activation gradients:
//   dW_l = dz_l^T a_{l-1}  [OUT_l, IN_l],   db_l = sum over rows of dz_l  [OUT_l],
// with a_{-1} = x (float32, rounded to fp16 as the forward rounds it) and dz_{L-1} = dz_out * scale (float32, to
// fp16 as the backward takes it); dz_hid and hidden are read as they are (fp16). Results are divided by scale.
// Why a kernel: as separate products the fp16 operands went through float32 copies and cuBLAS's skinny
// [64 x N] x [N x 64] GEMMs, ~20 Jittor ops per backward; here they are one launch on tensor cores.
//
// grid = (G, L), WG_THREADS threads. Block (g, l) takes layer l's rows in chunks of WG_CH, chunk g, g + G, ...;
// stages each chunk of dz_l [WG_CH, OUT_l] and a_{l-1} [WG_CH, IN_l] in shared memory as fp16, and accumulates
// the [OUT_l, IN_l] product on tensor cores (fp32; warp w owns the 16x16 tiles w, w + NWARPS, ...). It writes its
// partial sums to its own slot partial[g] (laid out as pack_weights | pack_biases: dW_0 .. dW_{L-1} at their
// padded shapes, then db_0 .. db_{L-1}); the caller sums over g. No atomics, so the result is deterministic.
//   partial  [G, P] float32, P = sum_l OUT_l * IN_l + sum_l OUT_l
template <int W, int IN_PAD, int OUT_PAD> struct WgCfg {
    static constexpr int MAXW = cmax<cmax<W, IN_PAD>::value, OUT_PAD>::value;
    static constexpr int CH = MAXW <= 128 ? 64 : 32;          // rows per staged chunk: 2 buffers under 48 KB
    static constexpr int NWARPS = MAXW >= 128 ? 8 : 4;         // at most 16 accumulator tiles per warp
    static constexpr int THREADS = NWARPS * 32;
};

// Stage rows [row0, row0 + CH) of a fp16 [n, COLS] matrix into shared [CH, COLS + SKEW], zero rows past n.
template <int COLS, int CH, int THREADS>
__device__ __forceinline__ void stage_half_rows(__half* dst, const __half* __restrict__ src, int row0, int n) {
    constexpr int VECS = COLS / 8;                              // 16-byte vectors per row
    for (int i = threadIdx.x; i < CH * VECS; i += THREADS) {
        const int r = i / VECS, v = i - r * VECS, g = row0 + r;
        uint4 raw = make_uint4(0u, 0u, 0u, 0u);
        if (g < n) raw = *reinterpret_cast<const uint4*>(src + (size_t)g * COLS + v * 8);
        *reinterpret_cast<uint4*>(dst + r * (COLS + SKEW) + v * 8) = raw;
    }
}

template <int OUT, int IN, int CH, int NWARPS>
__device__ __forceinline__ void wgrad_layer(const __half* a_src, const float* a_src32, int a_cols, float a_mul,
                                            const __half* b_src, const float* b_src32, int b_cols, int n,
                                            float inv_scale, __half* a_s, __half* b_s,
                                            float* __restrict__ dw, float* __restrict__ db) {
    constexpr int THREADS = NWARPS * 32;
    constexpr int TILES = (OUT / 16) * (IN / 16);
    constexpr int TPW = (TILES + NWARPS - 1) / NWARPS;          // tiles per warp
    const int warp = threadIdx.x >> 5;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[TPW];
#pragma unroll
    for (int i = 0; i < TPW; ++i) wmma::fill_fragment(acc[i], 0.0f);
    float bias_sum[(OUT + THREADS - 1) / THREADS];
#pragma unroll
    for (int i = 0; i < (OUT + THREADS - 1) / THREADS; ++i) bias_sum[i] = 0.0f;

    for (int chunk = blockIdx.x; chunk * CH < n; chunk += gridDim.x) {
        const int row0 = chunk * CH;
        if (a_src32) load_rows<OUT, CH, THREADS>(a_s, a_src32, row0, n, a_cols, a_mul);
        else stage_half_rows<OUT, CH, THREADS>(a_s, a_src, row0, n);
        if (b_src32) load_rows<IN, CH, THREADS>(b_s, b_src32, row0, n, b_cols, 1.0f);
        else stage_half_rows<IN, CH, THREADS>(b_s, b_src, row0, n);
        __syncthreads();
#pragma unroll
        for (int i = 0; i < TPW; ++i) {
            const int t = warp + i * NWARPS;
            if (t < TILES) {
                const int ot = t / (IN / 16), it = t - ot * (IN / 16);
#pragma unroll
                for (int k = 0; k < CH; k += 16) {
                    // A^T tile: element (o, r) = dz[r, o], a col-major read of the row-major staged dz
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::col_major> af;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> bf;
                    wmma::load_matrix_sync(af, a_s + k * (OUT + SKEW) + ot * 16, OUT + SKEW);
                    wmma::load_matrix_sync(bf, b_s + k * (IN + SKEW) + it * 16, IN + SKEW);
                    wmma::mma_sync(acc[i], af, bf, acc[i]);
                }
            }
        }
#pragma unroll
        for (int i = 0; i < (OUT + THREADS - 1) / THREADS; ++i) {
            const int c = threadIdx.x + i * THREADS;
            if (c < OUT)
                for (int r = 0; r < CH; ++r) bias_sum[i] += __half2float(a_s[r * (OUT + SKEW) + c]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < TPW; ++i) {
        const int t = warp + i * NWARPS;
        if (t < TILES) {
            const int ot = t / (IN / 16), it = t - ot * (IN / 16);
#pragma unroll
            for (int e = 0; e < acc[i].num_elements; ++e) acc[i].x[e] *= inv_scale;
            wmma::store_matrix_sync(dw + (ot * 16) * IN + it * 16, acc[i], IN, wmma::mem_row_major);
        }
    }
#pragma unroll
    for (int i = 0; i < (OUT + THREADS - 1) / THREADS; ++i) {
        const int c = threadIdx.x + i * THREADS;
        if (c < OUT) db[c] = bias_sum[i] * inv_scale;
    }
}

template <int W, int IN_PAD, int OUT_PAD>
__global__ void __launch_bounds__(WgCfg<W, IN_PAD, OUT_PAD>::THREADS)
ffmlp_weight_grad(const float* __restrict__ x, const float* __restrict__ dz_out, const float* __restrict__ scale_p,
                  const __half* __restrict__ hidden, const __half* __restrict__ dz_hid, int n, int n_in, int n_out,
                  int n_layers, float* __restrict__ partial, int p_stride) {
    using C = WgCfg<W, IN_PAD, OUT_PAD>;
    __shared__ __align__(128) __half a_s[C::CH * (C::MAXW + SKEW)];
    __shared__ __align__(128) __half b_s[C::CH * (C::MAXW + SKEW)];
    const int l = blockIdx.y, L = n_layers;
    const float scale = *scale_p, inv_scale = 1.0f / scale;
    // offsets of layer l in the packed layout (layer_shape in fused_mlp.py)
    auto rows_of = [&](int k) { return k == L - 1 ? OUT_PAD : W; };
    auto cols_of = [&](int k) { return k == 0 ? IN_PAD : W; };
    size_t w_off = 0, b_off = 0, w_total = 0;
    for (int k = 0; k < L; ++k) {
        if (k < l) { w_off += (size_t)rows_of(k) * cols_of(k); b_off += rows_of(k); }
        w_total += (size_t)rows_of(k) * cols_of(k);
    }
    float* dw = partial + (size_t)blockIdx.x * p_stride + w_off;
    float* db = partial + (size_t)blockIdx.x * p_stride + w_total + b_off;
    const __half* dz_l = l < L - 1 ? dz_hid + (size_t)l * n * W : nullptr;
    const __half* a_prev = l > 0 ? hidden + (size_t)(l - 1) * n * W : nullptr;
    if (L == 1)
        wgrad_layer<OUT_PAD, IN_PAD, C::CH, C::NWARPS>(nullptr, dz_out, n_out, scale, nullptr, x, n_in, n, inv_scale,
                                                       a_s, b_s, dw, db);
    else if (l == 0)
        wgrad_layer<W, IN_PAD, C::CH, C::NWARPS>(dz_l, nullptr, W, 1.0f, nullptr, x, n_in, n, inv_scale,
                                                 a_s, b_s, dw, db);
    else if (l == L - 1)
        wgrad_layer<OUT_PAD, W, C::CH, C::NWARPS>(nullptr, dz_out, n_out, scale, a_prev, nullptr, W, n, inv_scale,
                                                  a_s, b_s, dw, db);
    else
        wgrad_layer<W, W, C::CH, C::NWARPS>(dz_l, nullptr, W, 1.0f, a_prev, nullptr, W, n, inv_scale,
                                            a_s, b_s, dw, db);
}

}  // namespace jnerf_ffmlp
