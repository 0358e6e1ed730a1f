// Inverse of a triangular C×C matrix A (the other triangle is not read): X = A⁻¹ by substitution,
// one work-item per column j of X, which depends only on column j of the identity, so the
// columns need no synchronization. lower = 1: forward substitution, X[i][j] = (δij − Σ_{j≤k<i}
// A[i][k]·X[k][j]) / A[i][i]; lower = 0: backward substitution over k in (i, j].
// Twin: TriangularInverse.evaluate in Sources/SBIGraph/Primitives/TriangularInverse.swift.
__kernel void triangular_inverse(__global const float* a, int ao, __global float* x, int xo, int C, int lower) {
    int j = get_global_id(0);
    if (j < C) {
        for (int step = 0; step < C; step++) {
            int i = lower ? step : C - 1 - step;
            float value = 0.0f;
            bool inside = lower ? i >= j : i <= j;
            if (inside) {
                float sum = i == j ? 1.0f : 0.0f;
                if (lower) { for (int k = j; k < i; k++) sum -= a[ao + i * C + k] * x[xo + k * C + j]; }
                else { for (int k = i + 1; k <= j; k++) sum -= a[ao + i * C + k] * x[xo + k * C + j]; }
                value = sum / a[ao + i * C + i];
            }
            x[xo + i * C + j] = value;
        }
    }
}
