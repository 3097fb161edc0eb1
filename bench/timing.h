/* The clock and the sort order the C kernel benchmarks share (conv_kernel_bench.c, sinc_kernel_bench.c). */
#ifndef EQUIVD_BENCH_TIMING_H
#define EQUIVD_BENCH_TIMING_H

#include <time.h>

/* Seconds on the monotonic clock. */
static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* qsort's order for doubles, ascending: medians and best calls from sorted times. */
static inline int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
