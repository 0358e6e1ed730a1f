// Rational-quadratic spline coupling (Neural Spline Flows, Durkan et al. 2019), matching nflows'
// unconstrained_rational_quadratic_spline with linear tails. BINS (K) bins on [−B, B]; outside
// the interval (and on masked features, mask 1) the map is the identity with log-det 0.
// Per transformed element the coupling net supplies P = 3K−1 raw values, contiguous at
// params[row·D·P + j·P ...]: K raw widths, K raw heights, K−1 raw interior derivatives.
//   widths  w = MIN_W + (1 − MIN_W·K)·softmax(raw_w), knots x_0 = −B, x_i = −B + 2B·Σ_{l<i} w_l, x_K = B
//   heights likewise → knots y_i
//   derivatives d_0 = d_K = 1, d_i = MIN_D + softplus(raw_d[i−1]) for 0 < i < K
// In bin k (x_k ≤ x < x_{k+1}; width W, height H, slope s = H/W, θ = (x − x_k)/W, T = θ(1−θ)):
//   y = y_k + H·(sθ² + d_k T) / Dn,  Dn = s + (d_k + d_{k+1} − 2s)·T
//   log dy/dx = log(s²·M) − 2·log Dn,  M = d_{k+1}θ² + 2sT + d_k(1−θ)²
// The inverse solves aθ² + bθ + c = 0 with the stable root θ = 2c / (−b − √(b² − 4ac)).
// Twin: SplineKnots in Sources/SBIModels/Ops/RQSplineOp.swift.

#ifndef WG
#define WG 128
#endif
#ifndef BINS
#define BINS 8
#endif
// The minimum bin width, height and derivative come from Swift (RationalQuadraticSpline's
// constants), so that they are written once.
#if !defined(MIN_W) || !defined(MIN_H) || !defined(MIN_D)
#error "build with -DMIN_W, -DMIN_H and -DMIN_D (RationalQuadraticSpline.defines)"
#endif
#define NPAR (3 * BINS - 1)

inline float spline_softplus(float x) { return fmax(x, 0.0f) + log1p(exp(-fabs(x))); }

// Normalized bin sizes (softmax rescaled by the minimum) of K raw values.
inline void spline_bins(__global const float* raw, float* size, float minimum) {
    float mx = raw[0];
    for (int i = 1; i < BINS; i++) mx = fmax(mx, raw[i]);
    float total = 0.0f;
    for (int i = 0; i < BINS; i++) { size[i] = exp(raw[i] - mx); total += size[i]; }
    for (int i = 0; i < BINS; i++) size[i] = minimum + (1.0f - minimum * BINS) * (size[i] / total);
}

// Knots from bin sizes: knot[0] = −B, knot[i] = −B + 2B·cumsum, knot[K] = B exactly.
inline void spline_knots(const float* size, float* knot, float bound) {
    float acc = 0.0f;
    knot[0] = -bound;
    for (int i = 1; i < BINS; i++) { acc += size[i - 1]; knot[i] = 2.0f * bound * acc - bound; }
    knot[BINS] = bound;
}

// The knots and derivatives of one element.
inline void spline_setup(__global const float* p, float bound, float* xk, float* yk, float* dk) {
    float size[BINS];
    spline_bins(p, size, MIN_W);
    spline_knots(size, xk, bound);
    spline_bins(p + BINS, size, MIN_H);
    spline_knots(size, yk, bound);
    dk[0] = 1.0f;
    dk[BINS] = 1.0f;
    for (int i = 1; i < BINS; i++) dk[i] = MIN_D + spline_softplus(p[2 * BINS + i - 1]);
}

// nflows' searchsorted (last knot nudged by 1e-6) as a linear scan; v is inside [−B, B].
inline int spline_bin(const float* knot, float v) {
    int k = 0;
    for (int i = 1; i < BINS; i++) if (v >= knot[i]) k = i;
    return k;
}

// y (or x, inverse) and the log |det| of one element inside [−B, B].
inline float spline_element(int inverse, float v, __global const float* p, float bound, float* logdet) {
    float xk[BINS + 1], yk[BINS + 1], dk[BINS + 1];
    spline_setup(p, bound, xk, yk, dk);
    int k = spline_bin(inverse ? yk : xk, v);
    float w = xk[k + 1] - xk[k], h = yk[k + 1] - yk[k];
    float s = h / w, d0 = dk[k], d1 = dk[k + 1];
    float sum = d0 + d1 - 2.0f * s;
    float theta, out = 0.0f;
    if (inverse) {
        float dy = v - yk[k];
        float a = dy * sum + h * (s - d0);
        float b = h * d0 - dy * sum;
        float c = -s * dy;
        float disc = fmax(b * b - 4.0f * a * c, 0.0f);
        theta = (2.0f * c) / (-b - sqrt(disc));
        out = theta * w + xk[k];
    } else {
        theta = (v - xk[k]) / w;
    }
    float t = theta * (1.0f - theta);
    float den = s + sum * t;
    if (!inverse) out = yk[k] + h * (s * theta * theta + d0 * t) / den;
    float one = 1.0f - theta;
    float m = d1 * theta * theta + 2.0f * s * t + d0 * one * one;
    float ld = log(s * s * m) - 2.0f * log(den);
    *logdet = inverse ? -ld : ld;
    return out;
}

// One work-group per row: items stride over the features and reduce the log-det in local memory.
__kernel void rq_spline(int inverse, __global const float* x, int xo, __global const float* params, int po,
                        __global const float* mask, int mo, __global float* y, int yo,
                        __global float* logdet, int lo, int rows, int D, float bound) {
    __local float partial[WG];
    int row = get_group_id(0), lid = get_local_id(0);
    float sum = 0.0f;
    if (row < rows) {
        for (int j = lid; j < D; j += WG) {
            float v = x[xo + row * D + j];
            float out = v;
            if (mask[mo + j] == 0.0f && v >= -bound && v <= bound) {
                float ld;
                out = spline_element(inverse, v, params + po + (row * D + j) * NPAR, bound, &ld);
                sum += ld;
            }
            y[yo + row * D + j] = out;
        }
    }
    float total = group_sum(partial, sum, WG);
    if (lid == 0 && row < rows) logdet[lo + row] = total;
}

// Gradient w.r.t. K raw values of a softmax-normalized, cumsum'd set of knots, given the
// gradients ga (knot k) and gb (knot k+1) of the two knots the element touched.
// knot_i = −B + 2B·Σ_{l<i} size_l for 0 < i < K (knots 0 and K are constants), so
// g_size_l = 2B·(ga·[l < k, 0 < k] + gb·[l < k+1, k+1 < K]); size = MIN + (1 − MIN·K)·p and
// g_raw_l = p_l·(g_p_l − Σ p·g_p).
inline void spline_bins_backward(__global const float* raw, float minimum, float bound, int k, float ga, float gb,
                                 __global float* graw) {
    float p[BINS];
    float mx = raw[0];
    for (int i = 1; i < BINS; i++) mx = fmax(mx, raw[i]);
    float total = 0.0f;
    for (int i = 0; i < BINS; i++) { p[i] = exp(raw[i] - mx); total += p[i]; }
    float scale = 2.0f * bound * (1.0f - minimum * BINS);
    float ca = k > 0 ? ga : 0.0f, cb = k + 1 < BINS ? gb : 0.0f;
    float dot = 0.0f;
    for (int i = 0; i < BINS; i++) {
        p[i] = p[i] / total;
        float gp = (i < k ? ca : 0.0f) + (i <= k ? cb : 0.0f);
        dot += p[i] * gp;
    }
    for (int i = 0; i < BINS; i++) {
        float gp = (i < k ? ca : 0.0f) + (i <= k ? cb : 0.0f);
        graw[i] = scale * p[i] * (gp - dot);
    }
}

// Backward of the forward direction, one item per element, given gy (rows×D) and glogdet (rows):
// gradients w.r.t. x (rows×D) and all 3K−1 raw parameters of each element (rows×D·(3K−1)).
__kernel void rq_spline_backward(__global const float* x, int xo, __global const float* params, int po,
                                 __global const float* mask, int mo, __global const float* gy, int gyo,
                                 __global const float* gl, int glo, __global float* gx, int gxo,
                                 __global float* gparams, int gpo, int rows, int D, float bound) {
    int j = get_global_id(0), row = get_global_id(1);
    if (j < D && row < rows) {
        float v = x[xo + row * D + j];
        float g = gy[gyo + row * D + j];
        __global const float* p = params + po + (row * D + j) * NPAR;
        __global float* gp = gparams + gpo + (row * D + j) * NPAR;
        if (mask[mo + j] != 0.0f || v < -bound || v > bound) {
            gx[gxo + row * D + j] = g;
            for (int i = 0; i < NPAR; i++) gp[i] = 0.0f;
        } else {
            float gld = gl[glo + row];
            float xk[BINS + 1], yk[BINS + 1], dk[BINS + 1];
            spline_setup(p, bound, xk, yk, dk);
            int k = spline_bin(xk, v);
            float w = xk[k + 1] - xk[k], h = yk[k + 1] - yk[k];
            float s = h / w, d0 = dk[k], d1 = dk[k + 1];
            float sum = d0 + d1 - 2.0f * s;
            float theta = (v - xk[k]) / w;
            float one = 1.0f - theta;
            float t = theta * one, dt = 1.0f - 2.0f * theta;
            float num = s * theta * theta + d0 * t;
            float den = s + sum * t;
            float m = d1 * theta * theta + 2.0f * s * t + d0 * one * one;
            float q = num / den;
            // y = y_k + H·num/den: partials w.r.t. θ, s, d0, d1 (and H explicitly).
            float hy = g * h / den;
            float g_theta = hy * ((2.0f * s * theta + d0 * dt) - q * sum * dt);
            float g_s = hy * (theta * theta - q * (1.0f - 2.0f * t));
            float g_d0 = hy * (t - q * t);
            float g_d1 = hy * (-q * t);
            float g_h = g * q;
            // log-det = 2 log s + log m − 2 log den.
            float im = 1.0f / m, iden = 2.0f / den;
            g_theta += gld * ((2.0f * d1 * theta + 2.0f * s * dt - 2.0f * d0 * one) * im - iden * sum * dt);
            g_s += gld * (2.0f / s + 2.0f * t * im - iden * (1.0f - 2.0f * t));
            g_d0 += gld * (one * one * im - iden * t);
            g_d1 += gld * (theta * theta * im - iden * t);
            // s = H/W, θ = (x − x_k)/W, W = x_{k+1} − x_k, H = y_{k+1} − y_k.
            g_h += g_s / w;
            float g_w = -(g_s * s + g_theta * theta) / w;
            float g_xa = -g_theta / w - g_w, g_xb = g_w;
            float g_ya = g - g_h, g_yb = g_h;
            gx[gxo + row * D + j] = g_theta / w;
            spline_bins_backward(p, MIN_W, bound, k, g_xa, g_xb, gp);
            spline_bins_backward(p + BINS, MIN_H, bound, k, g_ya, g_yb, gp + BINS);
            for (int i = 1; i < BINS; i++) {
                float gd = i == k ? g_d0 : (i == k + 1 ? g_d1 : 0.0f);
                float r = p[2 * BINS + i - 1];
                gp[2 * BINS + i - 1] = gd / (1.0f + exp(-r));
            }
        }
    }
}
