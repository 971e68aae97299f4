/* One core's GEMM tile (synprof's AVX-512 12x32 micro-kernel, `kernels/tile.rs`) over a
 * whole 1x1 conv, with B read packed or in place, with and without software prefetch.
 *
 *     gcc -O3 -march=native benches/host/tile_prefetch.c -o /tmp/tile_prefetch
 *     /tmp/tile_prefetch K PIXELS M [AHEAD]
 *
 * K input channels, PIXELS pixels (a multiple of 32), M output channels (a multiple of 12).
 * Prints GFLOP/s (best of 50 runs) for B packed in 32-pixel panels (`boff[k] = 32 k`, what
 * im2col makes) and B read in place from the NCHW planes (`boff[k] = k * PIXELS`), each
 * without prefetch and with every line of the B row AHEAD steps on (default 16) asked for
 * in L1. In place, the K rows lie a plane apart: no hardware prefetcher follows hundreds of
 * such streams. Measured on the Intel dev host (benches/peers/RESULTS.md section 11):
 *
 *     K=256 PIXELS=3136 M=72 (B 3.2 MB, L3)   in place  78 -> 148 GFLOP/s, packed 139 -> 167
 *     K=256 PIXELS=1568 M=72 (B in L2)        in place 131 -> 179,          packed 176 -> 172
 *     K=1024 PIXELS=192 M=252                 in place 176 -> 190,          packed 190 -> 183
 *
 * (fma_peak.c: 175-190 with the host's turbo). In place the hint is the difference; packed
 * panels, which the prefetchers follow, gain or lose a few percent.
 *
 * BLK=n sweeps all M rows over n panels at a time (synprof's pixel blocks: n = 14 for this
 * conv); SHIFT=s moves B and C s floats past their 64-byte lines, where glibc's malloc put
 * large blocks (16 bytes past a page) before synprof aligned them (src/exec/cpu/alloc.rs):
 *
 *     BLK=14 SHIFT=0 /tmp/tile_prefetch 256 3136 60   in place, prefetch: 166 GFLOP/s
 *     BLK=14 SHIFT=4 /tmp/tile_prefetch 256 3136 60   in place, prefetch: 150-155 GFLOP/s */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* C[12 x 32] = A[kc steps of 12] * B (row k at b + off[k], 32 floats). */
__attribute__((noinline)) static void tile(int kc, const float *a, const float *b, const uint32_t *off, float *c,
                                           int ldc, int ahead) {
    __m512 acc[12][2];
    _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        if (ahead && k + ahead < kc) {
            const char *row = (const char *)(b + off[k + ahead]);
            _mm_prefetch(row, _MM_HINT_T0);
            _mm_prefetch(row + 64, _MM_HINT_T0);
            _mm_prefetch(row + 124, _MM_HINT_T0);
        }
        const float *bk = b + off[k];
        __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16);
        _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += 12;
    }
    _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) {
        _mm512_storeu_ps(c + i * ldc, acc[i][0]);
        _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
    }
}

/* Best seconds of 50 runs of the whole conv: for each A micro-panel, for each B panel. */
static double run(int K, int P, int M, int in_place, int ahead, const float *A, const float *B, float *C,
                  uint32_t *off) {
    int blk = getenv("BLK") ? atoi(getenv("BLK")) : P / 32;
    if (blk < 1) blk = P / 32;
    for (int k = 0; k < K; k++) off[k] = in_place ? (uint32_t)(k * P) : (uint32_t)(k * 32);
    double best = 1e9;
    for (int rep = 0; rep < 50; rep++) {
        double t0 = now();
        for (int p0 = 0; p0 < P / 32; p0 += blk)
        for (int m = 0; m < M / 12; m++)
            for (int p = p0; p < P / 32 && p < p0 + blk; p++) {
                const float *b = in_place ? B + p * 32 : B + (size_t)p * K * 32;
                tile(K, A + (size_t)m * K * 12, b, off, C + (size_t)m * 12 * P + p * 32, P, ahead);
            }
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s K PIXELS M [AHEAD]\n", argv[0]);
        return 2;
    }
    int K = atoi(argv[1]), P = atoi(argv[2]), M = atoi(argv[3]), ahead = argc > 4 ? atoi(argv[4]) : 16;
    if (K <= 0 || P <= 0 || M <= 0 || P % 32 || M % 12 || ahead < 0) {
        fprintf(stderr, "K, PIXELS (a multiple of 32) and M (a multiple of 12) must be positive\n");
        return 2;
    }
    int shift = getenv("SHIFT") ? atoi(getenv("SHIFT")) : 0;
    if (shift < 0 || shift > 15) shift = 0;
    float *A = aligned_alloc(64, (size_t)M * K * 4);
    float *B = (float *)aligned_alloc(64, (size_t)K * P * 4 + 64) + shift;
    float *C = (float *)aligned_alloc(64, (size_t)M * P * 4 + 64) + shift;
    uint32_t *off = calloc(K, 4);
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = 1e-3f * (i % 7);
    for (size_t i = 0; i < (size_t)K * P; i++) B[i] = 1e-3f * (i % 5);
    double flops = 2.0 * M * P * K;
    const char *form[] = {"packed", "in place"};
    for (int in_place = 0; in_place < 2; in_place++) {
        double plain = run(K, P, M, in_place, 0, A, B, C, off), hinted = run(K, P, M, in_place, ahead, A, B, C, off);
        printf("K=%d PIXELS=%d M=%d %-8s  no prefetch %6.1f GFLOP/s  prefetch %d ahead %6.1f GFLOP/s\n", K, P, M,
               form[in_place], flops / plain * 1e-9, ahead, flops / hinted * 1e-9);
    }
    return 0;
}
