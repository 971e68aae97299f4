/* Cache-line round trip between two threads pinned to CPUs 0 and 1, once per 250 ms.
 *
 *     gcc -O2 -pthread benches/host/pingpong.c -o /tmp/pingpong && /tmp/pingpong SECONDS
 *
 * Prints each quarter second's mean round trip in ns. On the 2-vCPU dev VM it reads 85-130 ns
 * while the host keeps the two vCPUs on cores sharing an L3 and 360-440 ns while it does not;
 * synprof's 2-thread runs are slower in the second state (benches/conv_RESULTS.md, "night").
 * Run it just before and after a measurement to tell which state the measurement saw. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Alignas(64) atomic_long flag;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

/* Answers every odd value with the next even one. */
static void *other(void *arg) {
    (void)arg;
    pin(1);
    for (long v = 1;; v += 2) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != v) {
        }
        atomic_store_explicit(&flag, v + 1, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int seconds = argc > 1 ? atoi(argv[1]) : 1;
    pin(0);
    pthread_t t;
    pthread_create(&t, NULL, other, NULL);
    long v = 0;
    for (int q = 0; q < seconds * 4; q++) {
        double t0 = now();
        long n = 0;
        while (now() - t0 < 0.25) {
            for (int i = 0; i < 1000; i++, v += 2) {
                atomic_store_explicit(&flag, v + 1, memory_order_release);
                while (atomic_load_explicit(&flag, memory_order_acquire) != v + 2) {
                }
            }
            n += 1000;
        }
        printf("%.0f ", (now() - t0) / n * 1e9);
        fflush(stdout);
    }
    printf("\n");
    return 0;
}
