// C[M×N] = act(alpha·op(A)·op(B) + beta·C + bias), row-major.
// op(A)[i,p] = TRANS_A ? A[p*M + i] : A[i*K + p];  op(B)[p,j] = TRANS_B ? B[j*K + p] : B[p*N + j].
//
// Tunable parameters are -D defines, as in CLBlast:
//   MWG, NWG   the C tile one work-group computes (rows, columns)
//   KWG        the depth of the tile staged in local memory per iteration
//   MDIMC, NDIMC  the work-group shape; each item computes (MWG/MDIMC)×(NWG/NDIMC) outputs
// Loads past the matrix edges are replaced by zeros and stores guarded, so any M, N, K works;
// the global size is padded to whole tiles and no item returns before a barrier.

#ifndef TRANS_A
#define TRANS_A 0
#endif
#ifndef TRANS_B
#define TRANS_B 0
#endif
#ifndef MWG
#define MWG 64
#endif
#ifndef NWG
#define NWG 64
#endif
#ifndef KWG
#define KWG 16
#endif
#ifndef MDIMC
#define MDIMC 16
#endif
#ifndef NDIMC
#define NDIMC 16
#endif
#define WPTM (MWG / MDIMC)
#define WPTN (NWG / NDIMC)
#define THREADS (MDIMC * NDIMC)

#if TRANS_A
#define A_AT(i, p) A[ao + (p) * M + (i)]
#else
#define A_AT(i, p) A[ao + (i) * K + (p)]
#endif
#if TRANS_B
#define B_AT(p, j) B[bo + (j) * K + (p)]
#else
#define B_AT(p, j) B[bo + (p) * N + (j)]
#endif

// Epilogue shared by both kernels. beta == 0 never reads C: new buffers hold garbage (maybe NaN).
inline float gemm_epilogue(float acc, float alpha, float beta, __global const float* C, int ci,
                           int hasBias, __global const float* bias, int biasIndex, int act, float slope) {
    float v = alpha * acc;
    if (beta != 0.0f) { float old = beta * C[ci]; v = v + old; }
    if (hasBias) v = v + bias[biasIndex];
    return apply_unary(act, v, slope);
}

__attribute__((reqd_work_group_size(MDIMC, NDIMC, 1)))
__kernel void gemm_tiled(int M, int N, int K, float alpha,
                         __global const float* A, int ao, __global const float* B, int bo,
                         float beta, __global float* C, int co,
                         int hasBias, __global const float* bias, int biaso, int act, float slope) {
    // k-major tiles: the inner product loop reads consecutive addresses of both.
    __local float As[KWG][MWG];
    __local float Bs[KWG][NWG];
    const int tm = get_local_id(0), tn = get_local_id(1);
    const int tid = tn * MDIMC + tm;
    const int row0 = get_group_id(0) * MWG, col0 = get_group_id(1) * NWG;

    float acc[WPTM][WPTN];
    for (int wm = 0; wm < WPTM; ++wm)
        for (int wn = 0; wn < WPTN; ++wn) acc[wm][wn] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += KWG) {
        for (int l = tid; l < MWG * KWG; l += THREADS) {
#if TRANS_A
            // Stored K×M: consecutive items take consecutive rows i of one p.
            int i = l % MWG, p = l / MWG;
#else
            int p = l % KWG, i = l / KWG;
#endif
            int gi = row0 + i, gp = k0 + p;
            As[p][i] = (gi < M && gp < K) ? A_AT(gi, gp) : 0.0f;
        }
        for (int l = tid; l < NWG * KWG; l += THREADS) {
#if TRANS_B
            int p = l % KWG, j = l / KWG;
#else
            int j = l % NWG, p = l / NWG;
#endif
            int gj = col0 + j, gp = k0 + p;
            Bs[p][j] = (gj < N && gp < K) ? B_AT(gp, gj) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int p = 0; p < KWG; ++p) {
            float a[WPTM], b[WPTN];
            for (int wm = 0; wm < WPTM; ++wm) a[wm] = As[p][tm + wm * MDIMC];
            for (int wn = 0; wn < WPTN; ++wn) b[wn] = Bs[p][tn + wn * NDIMC];
            for (int wm = 0; wm < WPTM; ++wm)
                for (int wn = 0; wn < WPTN; ++wn) acc[wm][wn] = mad(a[wm], b[wn], acc[wm][wn]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    for (int wm = 0; wm < WPTM; ++wm) {
        int i = row0 + tm + wm * MDIMC;
        for (int wn = 0; wn < WPTN; ++wn) {
            int j = col0 + tn + wn * NDIMC;
            if (i < M && j < N) {
                int ci = co + i * N + j;
                C[ci] = gemm_epilogue(acc[wm][wn], alpha, beta, C, ci, hasBias, bias, biaso + j, act, slope);
            }
        }
    }
}

// Small shapes: one item per output, no local memory, no tile padding waste.
__kernel void gemm_direct(int M, int N, int K, float alpha,
                          __global const float* A, int ao, __global const float* B, int bo,
                          float beta, __global float* C, int co,
                          int hasBias, __global const float* bias, int biaso, int act, float slope) {
    const int j = get_global_id(0), i = get_global_id(1);
    if (i < M && j < N) {
        float acc = 0.0f;
        for (int p = 0; p < K; ++p) acc = mad(A_AT(i, p), B_AT(p, j), acc);
        int ci = co + i * N + j;
        C[ci] = gemm_epilogue(acc, alpha, beta, C, ci, hasBias, bias, biaso + j, act, slope);
    }
}
