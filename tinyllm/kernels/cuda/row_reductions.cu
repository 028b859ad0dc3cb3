// Row kernels of tinyllm's CuPy backend: one thread block per row of a C-contiguous
// (rows, C) array. Compiled by NVRTC at first use (tinyllm/kernels/cuda/__init__.py loads
// this file), for float and double. Each kernel's Python wrapper in tinyllm/kernels/cuda/
// states the formula; tests/test_cuda_kernels.py checks each against the reference.

// NVRTC compiles without the C headers: infinities and NaN from their bit patterns.
template<typename T> __device__ __forceinline__ T neg_inf();
template<> __device__ __forceinline__ float neg_inf<float>() { return -__int_as_float(0x7f800000); }
template<> __device__ __forceinline__ double neg_inf<double>() { return -__longlong_as_double(0x7ff0000000000000LL); }
template<typename T> __device__ __forceinline__ T not_a_number();
template<> __device__ __forceinline__ float not_a_number<float>() { return __int_as_float(0x7fffffff); }
template<> __device__ __forceinline__ double not_a_number<double>() { return __longlong_as_double(0x7ff8000000000000LL); }
template<typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template<typename T> __device__ __forceinline__ T warp_max(T v) {
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Sum (or max) of one value per thread over the block; every thread gets the result.
template<typename T> __device__ T block_sum(T v, T* sh) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();                      // sh may still be read from the previous call
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        v = lane < nw ? sh[lane] : (T)0;
        v = warp_sum(v);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}
template<typename T> __device__ T block_max(T v, T* sh) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        v = lane < nw ? sh[lane] : neg_inf<T>();
        v = warp_max(v);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

// The row kernels below keep a row in registers: thread t holds elements t, t + blockDim,
// t + 2 blockDim, ... (KC of them), so a row is read from memory once and written once.
// The launcher picks blockDim >= C / KC; rows wider than KC * 1024 take the reference path.
#define KC 4

// Layer norm: xhat = (x - mean) * rstd, y = xhat * w + b; saves xhat and rstd.
template<typename T>
__global__ void ln_fwd(const T* x, const T* w, const T* b, T* y, T* xhat, T* rstd, int C, T eps) {
    __shared__ T sh[32];
    size_t off = (size_t)blockIdx.x * C;
    T v[KC], s = 0;
    #pragma unroll
    for (int k = 0; k < KC; k++) {
        int i = threadIdx.x + k * blockDim.x;
        v[k] = i < C ? x[off + i] : (T)0;
        s += v[k];
    }
    T mean = block_sum(s, sh) / (T)C;
    T var = 0;
    #pragma unroll
    for (int k = 0; k < KC; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < C) { v[k] -= mean; var += v[k] * v[k]; }
    }
    T rs = (T)1 / sqrt(block_sum(var, sh) / (T)C + eps);
    #pragma unroll
    for (int k = 0; k < KC; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < C) {
            T h = v[k] * rs;
            xhat[off + i] = h;
            T o = w ? h * w[i] : h;
            y[off + i] = b ? o + b[i] : o;
        }
    }
    if (threadIdx.x == 0) rstd[blockIdx.x] = rs;
}

// Layer norm backward of x: gs = g * w;  dx = (gs - mean(gs) - xhat * mean(gs * xhat)) * rstd.
template<typename T>
__global__ void ln_bwd(const T* g, const T* w, const T* xhat, const T* rstd, T* dx, int C) {
    __shared__ T sh[32];
    size_t off = (size_t)blockIdx.x * C;
    T gs[KC], h[KC], s1 = 0, s2 = 0;
    #pragma unroll
    for (int k = 0; k < KC; k++) {
        int i = threadIdx.x + k * blockDim.x;
        gs[k] = i < C ? (w ? g[off + i] * w[i] : g[off + i]) : (T)0;
        h[k] = i < C ? xhat[off + i] : (T)0;
        s1 += gs[k];
        s2 += gs[k] * h[k];
    }
    T m1 = block_sum(s1, sh) / (T)C;
    T m2 = block_sum(s2, sh) / (T)C;
    T rs = rstd[blockIdx.x];
    #pragma unroll
    for (int k = 0; k < KC; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < C) dx[off + i] = (gs[k] - m1 - h[k] * m2) * rs;
    }
}

// Softmax of each row of s * scale, in place: y = exp(x - max) / sum exp(x - max).
// Attention: Tq query rows per (batch, head); with causal != 0, query i (the i-th of
// the LAST Tq positions of Tk) sees keys j <= i + Tk - Tq only; the others get weight 0,
// and a row that sees nothing (-inf everywhere) is all zeros.
template<typename T>
__global__ void softmax_rows(T* s, int C, int Tq, int causal, T scale) {
    __shared__ T sh[32];
    T* r = s + (size_t)blockIdx.x * C;
    int limit = causal ? (int)(blockIdx.x % Tq) + C - Tq + 1 : C;   // keys 0..limit-1 are allowed
    T v[KC], m = neg_inf<T>();
    #pragma unroll
    for (int k = 0; k < KC; k++) {
        int j = threadIdx.x + k * blockDim.x;
        v[k] = j < limit ? r[j] * scale : neg_inf<T>();
        m = max(m, v[k]);
    }
    m = block_max(m, sh);
    if (m == neg_inf<T>()) m = 0;                                      // nothing allowed: all weights 0
    T z = 0;
    #pragma unroll
    for (int k = 0; k < KC; k++) { v[k] = exp(v[k] - m); z += v[k]; }
    z = block_sum(z, sh);
    T inv = z > 0 ? (T)1 / z : (T)0;
    #pragma unroll
    for (int k = 0; k < KC; k++) {
        int j = threadIdx.x + k * blockDim.x;
        if (j < C) r[j] = v[k] * inv;
    }
}

// Softmax backward, in place in g: dx = scale * y * (g - sum(g * y)).
template<typename T>
__global__ void softmax_bwd_rows(T* g, const T* y, int C, T scale) {
    __shared__ T sh[32];
    size_t off = (size_t)blockIdx.x * C;
    T gv[KC], yv[KC], s = 0;
    #pragma unroll
    for (int k = 0; k < KC; k++) {
        int j = threadIdx.x + k * blockDim.x;
        gv[k] = j < C ? g[off + j] : (T)0;
        yv[k] = j < C ? y[off + j] : (T)0;
        s += gv[k] * yv[k];
    }
    s = block_sum(s, sh);
    #pragma unroll
    for (int k = 0; k < KC; k++) {
        int j = threadIdx.x + k * blockDim.x;
        if (j < C) g[off + j] = scale * (yv[k] * (gv[k] - s));
    }
}

// Cross-entropy of each row, relative to its max m (exact for logits of +-1e4 in float32):
//   ls = log sum exp(z - m),  loss = (1 - eps)(ls - (z[t] - m)) + eps (ls - mean(z - m)),
// 0 where t == ignore; NaN where t is out of range (also reported by the caller's check).
template<typename T>
__global__ void xent_fwd(const T* z, const long long* t, T* loss, T* mx, T* lsum, int C, long long ignore, T eps) {
    __shared__ T sh[32];
    const T* r = z + (size_t)blockIdx.x * C;
    T m = neg_inf<T>();
    for (int j = threadIdx.x; j < C; j += blockDim.x) m = max(m, r[j]);
    m = block_max(m, sh);
    T e = 0, s = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) { T d = r[j] - m; e += exp(d); s += d; }
    T ls = log(block_sum(e, sh));
    T mean_shifted = block_sum(s, sh) / (T)C;
    if (threadIdx.x == 0) {
        long long tt = t[blockIdx.x];
        mx[blockIdx.x] = m;
        lsum[blockIdx.x] = ls;
        if (tt == ignore) loss[blockIdx.x] = 0;
        else if (tt < 0 || tt >= C) loss[blockIdx.x] = not_a_number<T>();
        else loss[blockIdx.x] = ((T)1 - eps) * (ls - (r[tt] - m)) + eps * (ls - mean_shifted);
    }
}
