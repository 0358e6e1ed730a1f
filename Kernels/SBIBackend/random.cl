// Philox-4x32-10, the twin of Sources/SBIBackend/CPU/Philox.swift: item j computes the block for
// counter (offset / 4 + j) and writes the lanes of it that fall inside [offset, offset + n).

// Random123's philox4x32_10 on a full 128-bit counter and 64-bit key.
inline uint4 philox4x32_10_full(uint4 ctr, uint2 key) {
    uint c0 = ctr.x, c1 = ctr.y, c2 = ctr.z, c3 = ctr.w;
    uint k0 = key.x, k1 = key.y;
    for (int round = 0; round < 10; ++round) {
        if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        uint hi0 = mul_hi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint hi1 = mul_hi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        uint n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    }
    return (uint4)(c0, c1, c2, c3);
}

// Our streams: a 64-bit counter in counter words 0, 1 (words 2, 3 are 0), the seed as the key.
inline uint4 philox4x32_10(ulong counter, ulong seed) {
    return philox4x32_10_full((uint4)((uint)counter, (uint)(counter >> 32), 0u, 0u),
                              (uint2)((uint)seed, (uint)(seed >> 32)));
}

// (2k + 1)·2^-24 for the top 23 bits k: exact in single precision (an integer below 2^24 times a
// power of two), so the same on every device, and inside [2^-24, 1 - 2^-24].
inline float philox_unit(uint w) {
    return (float)(((w >> 9) << 1) | 1u) * 0x1p-24f;
}

inline uint lane_of(uint4 b, int lane) {
    return lane == 0 ? b.x : (lane == 1 ? b.y : (lane == 2 ? b.z : b.w));
}

// kind 0: uniform in (a, b): fma(b - a, u, a).  kind 1: normal, fma(b, z, a).  kind 2: raw words.
// kind 3: Bernoulli, b where u < a, else 0 (dropout masks).
// fma is correctly rounded everywhere, so the uniforms are bit-identical to the CPU backend's
// whether or not the compiler contracts multiply-adds (-cl-mad-enable).
__kernel void philox_fill(__global float* y, int yo, int n, ulong seed, ulong offset, float a, float b, int kind) {
    ulong block = offset / 4 + get_global_id(0);
    uint4 words = philox4x32_10(block, seed);
    float z[4];
    if (kind == 1) {
        float r0 = sqrt(-2.0f * log(philox_unit(words.x)));
        float t0 = 6.2831855f * philox_unit(words.y);
        float r1 = sqrt(-2.0f * log(philox_unit(words.z)));
        float t1 = 6.2831855f * philox_unit(words.w);
        z[0] = r0 * cos(t0); z[1] = r0 * sin(t0); z[2] = r1 * cos(t1); z[3] = r1 * sin(t1);
    }
    float width = b - a;
    for (int lane = 0; lane < 4; ++lane) {
        ulong g = block * 4 + lane;
        if (g >= offset && g < offset + (ulong)n) {
            int i = (int)(g - offset);
            uint w = lane_of(words, lane);
            if (kind == 0) y[yo + i] = fma(width, philox_unit(w), a);
            else if (kind == 1) y[yo + i] = fma(b, z[lane], a);
            else if (kind == 3) y[yo + i] = philox_unit(w) < a ? b : 0.0f;
            else y[yo + i] = as_float(w);
        }
    }
}
