// im2col of a block of output pixels for a stride-1, zero-"same"-padded K×K convolution of
// channels-last images x (N×H×W×C). Row r of the block is output pixel p = first + r, and its
// column (i·K + j)·C + c holds x[n, h + i − K/2, w + j − K/2, c], or 0 outside the image, so that
// the convolution of the block is one GEMM with the K·K·C × Cout weights.
// Twin: Im2Col.cpu in Sources/SBIGraph/Primitives/Convolution.swift.
__kernel void im2col(__global const float* x, int xo, __global float* col, int co,
                     int first, int rows, int H, int W, int C, int K) {
    int cols = K * K * C;
    int e = get_global_id(0);
    if (e < rows * cols) {
        int r = e / cols, q = e - r * cols;
        int c = q % C, tap = q / C;
        int i = tap / K, j = tap - i * K;
        int p = first + r;
        int w = p % W, h = (p / W) % H, n = p / (W * H);
        int hh = h + i - K / 2, ww = w + j - K / 2;
        float v = 0.0f;
        if (hh >= 0 && hh < H && ww >= 0 && ww < W) v = x[xo + ((n * H + hh) * W + ww) * C + c];
        col[co + e] = v;
    }
}

// The tap sum of a convolution computed output-side, for layers with fewer output than input
// channels: z = x·W′ holds, for every pixel p, the K·K·Cout products of its input channels with
// every tap's weights (column t·Cout + o), and
//   y[p, o] = bias[o] + Σ_t z[p + offset(t), t·Cout + o]   (0 outside the image),
// offset(t) = (i − K/2, j − K/2) for t = i·K + j. Reads K·K·Cout values per pixel instead of
// im2col's K·K·Cin. Twin: TapSum in Sources/SBIGraph/Primitives/Convolution.swift.
__kernel void tap_sum(__global const float* z, int zo, __global const float* bias, int bo, int hasBias,
                      __global float* y, int yo, int pixels, int H, int W, int C, int K) {
    int e = get_global_id(0);
    if (e < pixels * C) {
        int p = e / C, o = e - p * C;
        int w = p % W, h = (p / W) % H, n = p / (W * H);
        float sum = hasBias ? bias[bo + o] : 0.0f;
        for (int i = 0; i < K; i++) {
            int hh = h + i - K / 2;
            if (hh < 0 || hh >= H) continue;
            for (int j = 0; j < K; j++) {
                int ww = w + j - K / 2;
                if (ww < 0 || ww >= W) continue;
                sum += z[zo + ((n * H + hh) * W + ww) * K * K * C + (i * K + j) * C + o];
            }
        }
        y[yo + e] = sum;
    }
}

// The adjoint of tap_sum: g′[q, t·C + c] = g[q − offset(t), c] (0 outside the image), the
// im2col of g with the taps flipped.
__kernel void shifted_taps(__global const float* g, int go, __global float* out, int oo,
                           int pixels, int H, int W, int C, int K) {
    int cols = K * K * C;
    int e = get_global_id(0);
    if (e < pixels * cols) {
        int q = e / cols, r = e - q * cols;
        int c = r % C, t = r / C;
        int i = t / K, j = t - i * K;
        int w = q % W, h = (q / W) % H, n = q / (W * H);
        int hh = h - i + K / 2, ww = w - j + K / 2;
        float v = 0.0f;
        if (hh >= 0 && hh < H && ww >= 0 && ww < W) v = g[go + ((n * H + hh) * W + ww) * C + c];
        out[oo + e] = v;
    }
}
