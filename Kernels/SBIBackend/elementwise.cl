// Element-wise maps and row/column reductions. Every kernel takes (buffer, element offset) pairs
// so that the scheduler can place many tensors in one buffer.

__kernel void fill(__global float* y, int yo, int n, float value) {
    int i = get_global_id(0);
    if (i < n) y[yo + i] = value;
}

__kernel void copy(__global const float* x, int xo, __global float* y, int yo, int n) {
    int i = get_global_id(0);
    if (i < n) y[yo + i] = x[xo + i];
}

__kernel void unary(int op, __global const float* x, int xo, __global float* y, int yo, int n, float p) {
    int i = get_global_id(0);
    if (i < n) y[yo + i] = apply_unary(op, x[xo + i], p);
}

__kernel void affine(__global const float* x, int xo, __global float* y, int yo, int n,
                     float alpha, float beta) {
    int i = get_global_id(0);
    if (i < n) {
        float scaled = alpha * x[xo + i];
        y[yo + i] = scaled + beta;
    }
}

// broadcast: 0 none (b is rows×cols), 1 row (b has cols elements), 2 column (b has rows elements).
__kernel void binary(int op, int broadcast, __global const float* a, int ao, __global const float* b, int bo,
                     __global float* out, int oo, int rows, int cols) {
    int i = get_global_id(0);
    if (i < rows * cols) {
        int bi = broadcast == 0 ? i : (broadcast == 1 ? i % cols : i / cols);
        out[oo + i] = apply_binary(op, a[ao + i], b[bo + bi]);
    }
}

// One work-group of WG items per row (WG a power of two, -DWG=...); tree reduction in local memory. No early return: every
// item reaches every barrier, loads past the row are guarded instead.
#ifndef WG
#define WG 256
#endif

__kernel void sum_rows(__global const float* x, int xo, int rows, int cols, __global float* out, int oo) {
    __local float partial[WG];
    int row = get_group_id(0), lid = get_local_id(0);
    float s = 0.0f;
    if (row < rows)
        for (int c = lid; c < cols; c += WG) s += x[xo + row * cols + c];
    float total = group_sum(partial, s, WG);
    if (lid == 0 && row < rows) out[oo + row] = total;
}

__kernel void log_sum_exp_rows(__global const float* x, int xo, int rows, int cols, __global float* out, int oo) {
    __local float partial[WG];
    int row = get_group_id(0), lid = get_local_id(0);
    float m = -INFINITY;
    if (row < rows)
        for (int c = lid; c < cols; c += WG) m = fmax(m, x[xo + row * cols + c]);
    float rowMax = group_max(partial, m, WG);
    // A row of -inf gives -inf (log 0); a row holding +inf gives +inf (not inf - inf = NaN).
    float s = 0.0f;
    if (row < rows && !isinf(rowMax))
        for (int c = lid; c < cols; c += WG) s += exp(x[xo + row * cols + c] - rowMax);
    float total = group_sum(partial, s, WG);
    if (lid == 0 && row < rows) out[oo + row] = isinf(rowMax) ? rowMax : rowMax + log(total);
}

// Narrow rows (a few columns): one work-item per row, a sequential loop over the row.
__kernel void sum_rows_narrow(__global const float* x, int xo, int rows, int cols, __global float* out, int oo) {
    int row = get_global_id(0);
    if (row < rows) {
        float s = 0.0f;
        for (int c = 0; c < cols; ++c) s += x[xo + row * cols + c];
        out[oo + row] = s;
    }
}

__kernel void log_sum_exp_rows_narrow(__global const float* x, int xo, int rows, int cols,
                                      __global float* out, int oo) {
    int row = get_global_id(0);
    if (row < rows) {
        __global const float* p = x + xo + row * cols;
        float m = -INFINITY;
        for (int c = 0; c < cols; ++c) m = fmax(m, p[c]);
        float s = 0.0f;
        if (!isinf(m))
            for (int c = 0; c < cols; ++c) s += exp(p[c] - m);
        out[oo + row] = isinf(m) ? m : m + log(s);
    }
}

// One item per column; consecutive items read consecutive addresses.
__kernel void sum_columns(__global const float* x, int xo, int rows, int cols, __global float* out, int oo) {
    int c = get_global_id(0);
    if (c < cols) {
        float s = 0.0f;
        for (int r = 0; r < rows; ++r) s += x[xo + r * cols + c];
        out[oo + c] = s;
    }
}
