/* One core's f32 FMA peak: 12 independent 512-bit (or 256-bit) FMA chains, nothing loaded.
 *
 *     gcc -O2 -mavx512f -mfma benches/host/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
 *     gcc -O2 -mavx2 -mfma -DWIDTH=256 benches/host/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
 *
 * Prints GFLOP/s (2 per FMA lane). The ceiling for "% of peak" in benches/: a layer's
 * FLOPs over its time, over this figure times the threads. 12 chains cover 2 FMA pipes of
 * 4-6 cycles' latency; an empty asm keeps the compiler from folding the chains. */
#include <immintrin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifndef WIDTH
#define WIDTH 512
#endif
#if WIDTH == 512
typedef __m512 V;
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define LANES 16
#else
typedef __m256 V;
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define LANES 8
#endif

#define F(x) x = FMA(x, b, c);

int main(void) {
    V a0 = SET1(0.1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0,
      a11 = a0;
    V b = SET1(0.9999f), c = SET1(0.0001f);
    const long n = 100000000;
    for (int round = 0; round < 3; round++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long it = 0; it < n; it++) {
            F(a0) F(a1) F(a2) F(a3) F(a4) F(a5) F(a6) F(a7) F(a8) F(a9) F(a10) F(a11)
            __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7),
                             "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        printf("%.1f GFLOP/s (%d-bit FMA, one thread)\n", (double)n * 12 * LANES * 2 / s / 1e9, WIDTH);
    }
    float sink[LANES];
    memcpy(sink, &a0, sizeof sink);
    return sink[0] == 12345.0f;
}
