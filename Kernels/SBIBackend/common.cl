// Prepended to every program: the scalar definitions shared by all kernels.
// They must match Sources/SBIBackend/CPU/ScalarMath.swift formula for formula.
// The two backends agree within the built-ins' ulp bounds, not bit for bit: the OpenCL
// transcendental functions differ from the C library's by a few ulp, and programs are built with
// -cl-mad-enable, which may fuse a*b + c despite the pragma below. Where bit-identical results are
// promised (Philox words and uniforms, Kernels/SBIBackend/random.cl) the kernels use only exact operations
// and explicit fma.
#pragma OPENCL FP_CONTRACT OFF

// UnaryOp raw values.
#define OP_IDENTITY 0
#define OP_EXP 1
#define OP_LOG 2
#define OP_TANH 3
#define OP_RELU 4
#define OP_LEAKY_RELU 5
#define OP_SIGMOID 6
#define OP_SOFTPLUS 7
#define OP_SQUARE 8
#define OP_NEGATE 9
#define OP_ABS 10
#define OP_SQRT 11

inline float apply_unary(int op, float x, float p) {
    switch (op) {
    case OP_EXP: return exp(x);
    case OP_LOG: return log(x);
    case OP_TANH: return tanh(x);
    case OP_RELU: return x > 0.0f ? x : 0.0f;
    case OP_LEAKY_RELU: return x > 0.0f ? x : p * x;
    case OP_SIGMOID: return 1.0f / (1.0f + exp(-x));
    case OP_SOFTPLUS: return fmax(x, 0.0f) + log1p(exp(-fabs(x)));
    case OP_SQUARE: return x * x;
    case OP_NEGATE: return -x;
    case OP_ABS: return fabs(x);
    case OP_SQRT: return sqrt(x);
    default: return x;
    }
}

// BinaryOp raw values.
inline float apply_binary(int op, float a, float b) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    default: return a / b;
    }
}

// Tree reductions in local memory over a work-group of `size` items (a power of two), shared by
// every kernel that reduces a row or a vector. Every item must call them, since they hold
// barriers, and every item gets the result; `partial` (size floats) may be reused right after.
inline float group_sum(__local float* partial, float value, int size) {
    int lid = get_local_id(0);
    partial[lid] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = size / 2; stride > 0; stride >>= 1) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float total = partial[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

inline float group_max(__local float* partial, float value, int size) {
    int lid = get_local_id(0);
    partial[lid] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = size / 2; stride > 0; stride >>= 1) {
        if (lid < stride) partial[lid] = fmax(partial[lid], partial[lid + stride]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float total = partial[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}
