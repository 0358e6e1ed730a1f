// Adam as one fused launch over every parameter. Twin: AdamMath in Sources/SBIGraph/Training/AdamStep.swift.

// PyTorch's Adam/AdamW. c1, c2 are the bias corrections 1 − βᵗ; hasNorm selects clipping by the
// global norm whose square the previous launch left in normSq[0].
__kernel void adam_step(__global float* p, int po, __global const float* g, int go,
                        __global float* m, int mo, __global float* v, int vo, int n,
                        float lr, float beta1, float beta2, float eps, float weightDecay, float c1, float c2,
                        int hasNorm, __global const float* normSq, int no, float maxNorm,
                        int hasAverage, __global float* a, int ao, float averageDecay) {
    int i = get_global_id(0);
    if (i < n) {
        float scale = 1.0f;
        if (hasNorm) {
            // torch.nn.utils.clip_grad_norm_: min(1, maxNorm / (norm + 1e-6)); NaN leaves g as is.
            float coefficient = maxNorm / (sqrt(normSq[no]) + 1e-6f);
            if (coefficient < 1.0f) scale = coefficient;
        }
        float grad = g[go + i] * scale;
        float param = p[po + i];
        if (weightDecay > 0.0f) { float decay = lr * weightDecay; decay = decay * param; param = param - decay; }
        float mi = beta1 * m[mo + i];
        float gm = (1.0f - beta1) * grad;
        mi = mi + gm;
        float vi = beta2 * v[vo + i];
        float g2 = grad * grad;
        float gv = (1.0f - beta2) * g2;
        vi = vi + gv;
        m[mo + i] = mi;
        v[vo + i] = vi;
        float mHat = mi / c1;
        float vHat = vi / c2;
        float step = lr * mHat;
        step = step / (sqrt(vHat) + eps);
        param = param - step;
        p[po + i] = param;
        if (hasAverage) {
            // a += (1 - decay)·(p - a), one rounding per operation as on the CPU
            float ai = a[ao + i];
            float toward = param - ai;
            float weight = 1.0f - averageDecay;
            toward = weight * toward;
            a[ao + i] = ai + toward;
        }
    }
}
