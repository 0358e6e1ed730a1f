// Backward element-wise maps, feature-axis layout copies and the Adam update: the operations
// the graph layer adds for training. Twins: Sources/SBIBackend/CPU/CPUBackend+Training.swift.

inline float unary_derivative(int op, float x, float y, float p) {
    switch (op) {
    case OP_EXP: return y;
    case OP_LOG: return 1.0f / x;
    case OP_TANH: return 1.0f - y * y;
    case OP_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case OP_LEAKY_RELU: return x > 0.0f ? 1.0f : p;
    case OP_SIGMOID: return y * (1.0f - y);
    case OP_SOFTPLUS: return 1.0f / (1.0f + exp(-x));
    case OP_SQUARE: return 2.0f * x;
    case OP_NEGATE: return -1.0f;
    case OP_ABS: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
    case OP_SQRT: return 0.5f / y;
    default: return 1.0f;
    }
}

__kernel void unary_gradient(int op, __global const float* x, int xo, __global const float* y, int yo,
                             __global const float* g, int go, __global float* out, int oo, int n, float p) {
    int i = get_global_id(0);
    if (i < n) out[oo + i] = g[go + i] * unary_derivative(op, x[xo + i], y[yo + i], p);
}

__kernel void copy_columns(int rows, int width, __global const float* src, int so, int srcCols, int srcStart,
                           __global float* dst, int dstOff, int dstCols, int dstStart) {
    int c = get_global_id(0), r = get_global_id(1);
    if (c < width && r < rows) dst[dstOff + r * dstCols + dstStart + c] = src[so + r * srcCols + srcStart + c];
}

// An index outside the source cannot be refused from the device: it yields NaN instead of a
// read of another tensor's memory (the CPU backend throws).
__kernel void gather_columns(__global const float* src, int so, int rows, int cols,
                             __global const int* index, int io, int width, __global float* dst, int dstOff) {
    int c = get_global_id(0), r = get_global_id(1);
    if (c < width && r < rows) {
        int k = index[io + c];
        dst[dstOff + r * width + c] = (k >= 0 && k < cols) ? src[so + r * cols + k] : (k == -1 ? 0.0f : NAN);
    }
}

__kernel void gather_rows(__global const float* src, int so, int srcRows, int cols, __global const int* index,
                          int io, int count, __global float* dst, int dstOff) {
    int c = get_global_id(0), r = get_global_id(1);
    if (c < cols && r < count) {
        int k = index[io + r];
        // 64-bit: the source is a whole data set, whose rows × cols can pass 2³¹ (10⁶ images of 64×64).
        dst[dstOff + r * cols + c] = (k >= 0 && k < srcRows) ? src[so + (long)k * cols + c] : (k == -1 ? 0.0f : NAN);
    }
}

__kernel void broadcast_to(int broadcast, __global const float* b, int bo, __global float* out, int oo,
                           int rows, int cols) {
    int i = get_global_id(0);
    if (i < rows * cols) {
        int bi = broadcast == 0 ? i : (broadcast == 1 ? i % cols : i / cols);
        out[oo + i] = b[bo + bi];
    }
}

#ifndef WG
#define WG 256
#endif

// One work-group: strided partial sums, then a tree in local memory.
__kernel void sum_of_squares(__global const float* x, int xo, int n, __global float* out, int oo) {
    __local float partial[WG];
    int lid = get_local_id(0);
    float s = 0.0f;
    for (int i = lid; i < n; i += WG) { float v = x[xo + i]; s += v * v; }
    float total = group_sum(partial, s, WG);
    if (lid == 0) out[oo] = total;
}
