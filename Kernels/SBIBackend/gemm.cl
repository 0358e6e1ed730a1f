// C[M×N] = act(alpha·op(A)·op(B) + beta·C + bias), row-major.
// op(A)[i,p] = TRANS_A ? A[p*M + i] : A[i*K + p];  op(B)[p,j] = TRANS_B ? B[j*K + p] : B[p*N + j].
//
// Tunable parameters of gemm_tiled are -D defines, as in CLBlast:
//   MWG, NWG      the C tile one work-group computes (rows, columns)
//   KWG           the depth of one step of the k loop (staged in local memory when SA/SB)
//   MDIMC, NDIMC  the work-group shape: NDIMC items along the columns (dimension 0, so
//                 neighbouring items touch neighbouring addresses), MDIMC along the rows
//   VWN           vector width along the columns (1, 2, 4, 8 or 16): each item computes
//                 WPTM = MWG/MDIMC rows × WPTN = NWG/NDIMC columns, the columns as WPTN/VWN
//                 vectors of VWN adjacent columns, the vectors strided by NDIMC·VWN and the rows
//                 by MDIMC (so a work-group's loads and stores of a row are contiguous)
//   SA, SB        1: stage the KWG×MWG tile of A (KWG×NWG tile of B) in local memory, loaded
//                 cooperatively with coalesced reads (GPUs); 0: every item reads the operand
//                 straight from global memory (CPUs, where local memory is ordinary memory and
//                 the barriers cost more than the reuse gains)
//   KSYNC         1: a barrier after every k step even without local tiles. PoCL runs a work-group's
//                 items one after another between barriers, so this makes the whole group finish
//                 step k0 before any item starts the next: the group's KWG-deep slices of A and B
//                 are reused from cache (k-blocking, as BLAS does) instead of each item streaming
//                 its full K-long strips. Pointless on GPUs.
// The inner k loop is unrolled by up to 32 steps.
// Requirements: MWG % MDIMC == 0, NWG % (NDIMC·VWN) == 0.
// Any M, N, K works: the global size is padded to whole tiles; out-of-range rows and columns are
// read clamped to the last valid one (they only feed outputs that are never stored), local tiles
// past K are not read, and stores are guarded. No item returns before a barrier.

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
#ifndef VWN
#define VWN 1
#endif
#ifndef SA
#define SA 1
#endif
#ifndef SB
#define SB 1
#endif
#ifndef KSYNC
#define KSYNC 0
#endif
#define WPTM (MWG / MDIMC)
#define WPTN (NWG / NDIMC)
#define VPTN (WPTN / VWN)
#define THREADS (MDIMC * NDIMC)
// Row strides of the local tiles. Where neighbouring items store down a column of the tile
// (A stored M×K, B stored N×K), a padded row spreads the stores over the local memory banks;
// B keeps whole vectors per row.
#define ASTRIDE (MWG + (TRANS_A ? 0 : 1))
#define BSTRIDE (NWG / VWN + (TRANS_B ? 1 : 0))

#if MWG % MDIMC != 0 || NWG % (NDIMC * VWN) != 0
#error "gemm.cl: need MWG % MDIMC == 0 and NWG % (NDIMC * VWN) == 0"
#endif

#if VWN == 1
typedef float floatN;
#define VLOADN(off, p) ((p)[off])
#elif VWN == 2
typedef float2 floatN;
#define VLOADN(off, p) vload2(off, p)
#define VSTOREN(v, off, p) vstore2(v, off, p)
#elif VWN == 4
typedef float4 floatN;
#define VLOADN(off, p) vload4(off, p)
#define VSTOREN(v, off, p) vstore4(v, off, p)
#elif VWN == 8
typedef float8 floatN;
#define VLOADN(off, p) vload8(off, p)
#define VSTOREN(v, off, p) vstore8(v, off, p)
#elif VWN == 16
typedef float16 floatN;
#define VLOADN(off, p) vload16(off, p)
#define VSTOREN(v, off, p) vstore16(v, off, p)
#else
#error "gemm.cl: VWN must be 1, 2, 4, 8 or 16"
#endif

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

// One step p of the inner product: acc[wm][wv] += a[wm] · b[wv], with a and b fetched by the
// GET_A and GETB macros of the configuration. Every fixed-trip loop is unrolled so that the
// accumulators stay in registers (PoCL keeps rolled private arrays on the stack).
#define GEMM_STEP(p, GETB)                                                                          \
    {                                                                                               \
        floatN b_[VPTN];                                                                            \
        _Pragma("unroll") for (int wv = 0; wv < VPTN; ++wv) b_[wv] = GETB(p, wv);                  \
        _Pragma("unroll") for (int wm = 0; wm < WPTM; ++wm) {                                       \
            const float a_ = GET_A(p, wm);                                                          \
            _Pragma("unroll") for (int wv = 0; wv < VPTN; ++wv)                                     \
                acc[wm][wv] = fma((floatN)(a_), b_[wv], acc[wm][wv]);                               \
        }                                                                                           \
    }

// Operands of step p of the k0 block: from local memory p indexes the tile; from global memory
// the depth is k0 + p.
#if SA
#define GET_A(p, wm) As[(p) * ASTRIDE + (wm) * MDIMC + tm]
#elif TRANS_A
#define GET_A(p, wm) A[arow[wm] + (k0 + (p)) * M]
#else
#define GET_A(p, wm) A[arow[wm] + k0 + (p)]
#endif

#if SB
#define GET_B(p, wv) Bs[(p) * BSTRIDE + (wv) * NDIMC + tn]
#define GET_B_EDGE GET_B
#elif TRANS_B
#define GET_B(p, wv) gather_b(B, bcol[wv], (k0 + (p)), K)
#define GET_B_EDGE GET_B
#else
// Whole vectors inside the matrix; the edge variant clamps every lane.
#define GET_B(p, wv) VLOADN(0, B + bcol[wv] + (k0 + (p)) * N)
#define GET_B_EDGE(p, wv) gather_b(B, bcolEdge[wv], (k0 + (p)) * N, 1)
#endif

// VWN scalars B[col[v]·stride + p] as one vector (columns of a transposed B, or clamped edges).
inline floatN gather_b(__global const float* B, const int* col, int p, int stride) {
    float t[VWN];
    #pragma unroll
    for (int v = 0; v < VWN; ++v) t[v] = B[col[v] * stride + p];
#if VWN == 1
    return t[0];
#else
    return VLOADN(0, t);
#endif
}

__attribute__((reqd_work_group_size(NDIMC, MDIMC, 1)))
__kernel void gemm_tiled(int M, int N, int K, float alpha,
                         __global const float* A, int ao, __global const float* B, int bo,
                         float beta, __global float* C, int co,
                         int hasBias, __global const float* bias, int biaso, int act, float slope) {
    const int tn = get_local_id(0), tm = get_local_id(1);
    const int col0 = get_group_id(0) * NWG, row0 = get_group_id(1) * MWG;
#if SA
    __local float As[KWG * ASTRIDE];  // As[p][i]
#else
    // Start of row i of A (TRANS_A: of column i of the stored K×M), clamped into the matrix.
    int arow[WPTM];
    #pragma unroll
    for (int wm = 0; wm < WPTM; ++wm) {
        const int i = min(row0 + wm * MDIMC + tm, M - 1);
        arow[wm] = TRANS_A ? ao + i : ao + i * K;
    }
#endif
#if SB
    __local floatN Bs[KWG * BSTRIDE];  // Bs[p][j / VWN]
    __local float* Bsf = (__local float*)Bs;
#elif TRANS_B
    int bcol[VPTN][VWN];  // start of stored row j of B (column j of op(B)), clamped
    #pragma unroll
    for (int wv = 0; wv < VPTN; ++wv)
        #pragma unroll
        for (int v = 0; v < VWN; ++v)
            bcol[wv][v] = min(col0 + (wv * NDIMC + tn) * VWN + v, N - 1);
    B += bo;
#else
    int bcol[VPTN];  // start of the item's vector wv in row 0 of B
    #pragma unroll
    for (int wv = 0; wv < VPTN; ++wv) bcol[wv] = bo + col0 + (wv * NDIMC + tn) * VWN;
    int bcolEdge[VPTN][VWN];
    #pragma unroll
    for (int wv = 0; wv < VPTN; ++wv)
        #pragma unroll
        for (int v = 0; v < VWN; ++v) bcolEdge[wv][v] = bo + min(col0 + (wv * NDIMC + tn) * VWN + v, N - 1);
#endif

    floatN acc[WPTM][VPTN];
    #pragma unroll
    for (int wm = 0; wm < WPTM; ++wm)
        #pragma unroll
        for (int wv = 0; wv < VPTN; ++wv) acc[wm][wv] = (floatN)(0.0f);

#if !SB && !TRANS_B
    // Uniform per work-group: whole B vectors are in range, so plain vector loads are safe.
    const bool interiorN = col0 + NWG <= N;
#endif

    for (int k0 = 0; k0 < K; k0 += KWG) {
#if SA || SB
        const int tid = tm * NDIMC + tn;
#endif
#if SA
        for (int l = tid; l < MWG * KWG; l += THREADS) {
#if TRANS_A
            const int i = l % MWG, p = l / MWG;  // stored K×M: neighbouring items read along i
#else
            const int p = l % KWG, i = l / KWG;  // stored M×K: neighbouring items read along p
#endif
            const int gi = row0 + i, gp = k0 + p;
            As[p * ASTRIDE + i] = (gi < M && gp < K) ? A_AT(gi, gp) : 0.0f;
        }
#endif
#if SB
        for (int l = tid; l < NWG * KWG; l += THREADS) {
#if TRANS_B
            const int p = l % KWG, j = l / KWG;
#else
            const int j = l % NWG, p = l / NWG;
#endif
            const int gj = col0 + j, gp = k0 + p;
            Bsf[p * BSTRIDE * VWN + j] = (gj < N && gp < K) ? B_AT(gp, gj) : 0.0f;
        }
#endif
#if SA || SB
        barrier(CLK_LOCAL_MEM_FENCE);
#endif
        const int kLeft = K - k0;  // uniform: all items take the same branch
#if !SB && !TRANS_B
        if (interiorN) {
            if (kLeft >= KWG) {
#pragma unroll 32
                for (int p = 0; p < KWG; ++p) GEMM_STEP(p, GET_B)
            } else {
                for (int p = 0; p < kLeft; ++p) GEMM_STEP(p, GET_B)
            }
        } else {
            for (int p = 0; p < min(kLeft, KWG); ++p) GEMM_STEP(p, GET_B_EDGE)
        }
#else
        if (kLeft >= KWG) {
#pragma unroll 32
            for (int p = 0; p < KWG; ++p) GEMM_STEP(p, GET_B)
        } else {
            for (int p = 0; p < kLeft; ++p) GEMM_STEP(p, GET_B)
        }
#endif
#if SA || SB || KSYNC
        barrier(CLK_LOCAL_MEM_FENCE);
#endif
    }

    // The epilogue runs once per output, so it stays a rolled loop (one copy of apply_unary,
    // a fraction of the compile time); the accumulators are copied out with constant indices.
    float out[WPTM][WPTN];
    #pragma unroll
    for (int wm = 0; wm < WPTM; ++wm)
        #pragma unroll
        for (int wv = 0; wv < VPTN; ++wv) {
#if VWN == 1
            out[wm][wv] = acc[wm][wv];
#else
            VSTOREN(acc[wm][wv], wv, out[wm]);
#endif
        }
    #pragma unroll 1
    for (int wm = 0; wm < WPTM; ++wm) {
        const int i = row0 + wm * MDIMC + tm;
        #pragma unroll 1
        for (int w = 0; w < WPTN; ++w) {
            const int j = col0 + ((w / VWN) * NDIMC + tn) * VWN + w % VWN;
            if (i < M && j < N) {
                const int ci = co + i * N + j;
                C[ci] = gemm_epilogue(out[wm][w], alpha, beta, C, ci, hasBias, bias, biaso + j, act, slope);
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
