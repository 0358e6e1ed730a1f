// Fused affine coupling (RealNVP). For a binary mask m (1: passed through), the coupling net's
// raw output st = [raw s | t] (rows × 2D) and stabilizer s = B·tanh(raw/B) (B = 0: s = raw):
//   forward  y = m⊙x + (1−m)⊙(x⊙exp(s) + t),   logdet[r] = Σ_j (1−m_j)·s_j
//   inverse  x = m⊙y + (1−m)⊙((y − t)⊙exp(−s)), logdet[r] = −Σ_j (1−m_j)·s_j
// One work-group per row: items stride over the features and reduce the log-det in local
// memory, so y and the log-det cost one pass over x. Twin: AffineCouplingKernel in Sources/SBIModels/Ops/AffineCouplingOp.swift.

#ifndef WG
#define WG 256
#endif

inline float stabilize(float raw, float bound) {
    return bound > 0.0f ? bound * tanh(raw / bound) : raw;
}

__kernel void affine_coupling(int inverse, __global const float* x, int xo, __global const float* st, int so,
                              __global const float* mask, int mo, __global float* y, int yo,
                              __global float* logdet, int lo, int rows, int D, float bound) {
    __local float partial[WG];
    int row = get_group_id(0), lid = get_local_id(0);
    float sum = 0.0f;
    if (row < rows) {
        for (int j = lid; j < D; j += WG) {
            float m = mask[mo + j];
            float v = x[xo + row * D + j];
            float s = stabilize(st[so + row * 2 * D + j], bound);
            float t = st[so + row * 2 * D + D + j];
            float out;
            if (m != 0.0f) out = v;
            else if (inverse) { float shifted = v - t; out = shifted * exp(-s); }
            else { float scaled = v * exp(s); out = scaled + t; }
            y[yo + row * D + j] = out;
            if (m == 0.0f) sum += s;
        }
    }
    float total = group_sum(partial, sum, WG);
    if (lid == 0 && row < rows) logdet[lo + row] = inverse ? -total : total;
}

// Backward of the forward direction, given gy (rows×D) and glogdet (rows):
//   gx = gy⊙(m + (1−m)⊙exp(s)),  g_raw = (1−m)⊙(gy⊙x⊙exp(s) + glogdet)⊙s'(raw),  gt = (1−m)⊙gy
__kernel void affine_coupling_backward(__global const float* x, int xo, __global const float* st, int so,
                                       __global const float* mask, int mo, __global const float* gy, int gyo,
                                       __global const float* gl, int glo, __global float* gx, int gxo,
                                       __global float* gst, int gso, int rows, int D, float bound) {
    int j = get_global_id(0), row = get_global_id(1);
    if (j < D && row < rows) {
        float m = mask[mo + j];
        float raw = st[so + row * 2 * D + j];
        float g = gy[gyo + row * D + j];
        float graw = 0.0f, gt = 0.0f, gxv = g;
        if (m == 0.0f) {
            float th = bound > 0.0f ? tanh(raw / bound) : 0.0f;
            float s = bound > 0.0f ? bound * th : raw;
            float ds = bound > 0.0f ? 1.0f - th * th : 1.0f;
            float e = exp(s);
            gxv = g * e;
            float inner = g * x[xo + row * D + j];
            inner = inner * e;
            inner = inner + gl[glo + row];
            graw = inner * ds;
            gt = g;
        }
        gx[gxo + row * D + j] = gxv;
        gst[gso + row * 2 * D + j] = graw;
        gst[gso + row * 2 * D + D + j] = gt;
    }
}
