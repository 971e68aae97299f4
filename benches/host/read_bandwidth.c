/* Memory read bandwidth: THREADS threads each sum their share of a 256 MiB buffer with
 * 512-bit loads, three times.
 *
 *     gcc -O3 -march=native -pthread benches/host/read_bandwidth.c -o /tmp/read_bandwidth
 *     /tmp/read_bandwidth THREADS
 *
 * Prints GB/s per pass. On the Intel dev VM (benches/peers/RESULTS.md section 11): 13.7 GB/s
 * with one thread, 19-23 GB/s with two. ResNet-50 streams 100 MB of weights per image: at
 * batch 1 a layer whose weights come from memory is bound by this, not by the FMAs. */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static size_t floats;
static float *buf;
static int threads;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *sum_share(void *arg) {
    long id = (long)arg;
    size_t n = floats / threads;
    const float *p = buf + id * n;
    __m512 s = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) s = _mm512_add_ps(s, _mm512_load_ps(p + i));
    /* Keep the sum alive. */
    return (void *)(long)(_mm512_reduce_add_ps(s) > 1e30f);
}

int main(int argc, char **argv) {
    threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "usage: %s THREADS (1-64)\n", argv[0]);
        return 2;
    }
    floats = (size_t)64 << 20;
    buf = aligned_alloc(64, floats * 4);
    for (size_t i = 0; i < floats; i++) buf[i] = 1.0f;
    for (int pass = 0; pass < 3; pass++) {
        pthread_t th[64];
        double t0 = now();
        for (long i = 0; i < threads; i++) pthread_create(&th[i], 0, sum_share, (void *)i);
        for (int i = 0; i < threads; i++) pthread_join(th[i], 0);
        printf("threads=%d %.1f GB/s\n", threads, floats * 4 / (now() - t0) * 1e-9);
    }
    return 0;
}
