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
