// 2×2 max pooling with stride 2 of channels-last images x (N×H×W×C) into y (N×⌊H/2⌋×⌊W/2⌋×C);
// an odd last row or column is dropped. One work item per output element.
// Twin: MaxPool2D in Sources/SBIGraph/Primitives/Pooling.swift.
__kernel void max_pool2(__global const float* x, int xo, __global float* y, int yo,
                        int count, int H, int W, int C) {
    int e = get_global_id(0);
    if (e < count) {
        int h = H / 2, w = W / 2;
        int c = e % C, q = e / C, j = q % w, i = (q / w) % h, n = q / (w * h);
        int corner = xo + ((n * H + 2 * i) * W + 2 * j) * C + c;
        y[yo + e] = fmax(fmax(x[corner], x[corner + C]), fmax(x[corner + W * C], x[corner + W * C + C]));
    }
}

// Its gradient: one work item per input element, which receives dL/dy of its window when it is
// the window's first element (row-major) equal to the maximum, else 0 (0 in a dropped odd row
// or column). Twin: MaxPool2DGradient in Sources/SBIGraph/Primitives/Pooling.swift.
__kernel void max_pool2_gradient(__global const float* x, int xo, __global const float* y, int yo,
                                 __global const float* gy, int go, __global float* gx, int gxo,
                                 int count, int H, int W, int C) {
    int e = get_global_id(0);
    if (e < count) {
        int h = H / 2, w = W / 2;
        int c = e % C, q = e / C, col = q % W, row = (q / W) % H, n = q / (W * H);
        int i = row / 2, j = col / 2;
        float g = 0.0f;
        if (i < h && j < w) {
            int o = ((n * h + i) * w + j) * C + c;
            float m = y[yo + o];
            int winner = -1;
            for (int a = 0; a < 2; a++) {
                for (int b = 0; b < 2; b++) {
                    if (winner < 0 && x[xo + ((n * H + 2 * i + a) * W + 2 * j + b) * C + c] == m) winner = a * 2 + b;
                }
            }
            if (winner == (row - 2 * i) * 2 + (col - 2 * j)) g = gy[go + o];
        }
        gx[gxo + e] = g;
    }
}
