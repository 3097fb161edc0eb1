/*
 * The FMA peak of one core: a register-only loop of independent fused multiply-adds, no loads or
 * stores, for each vector width the CPU has. Prints one JSON line of lane-FMAs per second
 * (G FMA/s: one 8-wide AVX2 FMA counts 8). bench/model_bench.py builds and runs it pinned to the
 * core it measures, and reports each model's share of this peak.
 *
 *   cc -O2 -o fma_peak bench/fma_peak.c && taskset -c 1 ./fma_peak
 */
#include <stdio.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* 12 independent chains in named registers: enough to cover FMA latency (4-5 cycles) times two
 * FMA pipes, written out so that no compiler keeps them in memory. */
static const long ITERATIONS = 50 * 1000 * 1000;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* One pass of the loop for vector type T: twelve FMAs, then an empty asm that claims to change
 * every accumulator, so none can be folded or hoisted. Lanes is the vector's float count. */
#define PEAK(T, SET1, FMADD, FIRST, LANES, REG)                                                   \
    T a0 = SET1(0), a1 = SET1(1), a2 = SET1(2), a3 = SET1(3), a4 = SET1(4), a5 = SET1(5);          \
    T a6 = SET1(6), a7 = SET1(7), a8 = SET1(8), a9 = SET1(9), a10 = SET1(10), a11 = SET1(11);      \
    const T b = SET1(0.999f), c = SET1(1e-7f);                                                     \
    double start = now();                                                                          \
    for (long n = 0; n < ITERATIONS; n++) {                                                        \
        a0 = FMADD(a0, b, c), a1 = FMADD(a1, b, c), a2 = FMADD(a2, b, c), a3 = FMADD(a3, b, c);    \
        a4 = FMADD(a4, b, c), a5 = FMADD(a5, b, c), a6 = FMADD(a6, b, c), a7 = FMADD(a7, b, c);    \
        a8 = FMADD(a8, b, c), a9 = FMADD(a9, b, c), a10 = FMADD(a10, b, c), a11 = FMADD(a11, b, c); \
        __asm__ volatile("" : "+" REG(a0), "+" REG(a1), "+" REG(a2), "+" REG(a3), "+" REG(a4), "+" REG(a5), \
                         "+" REG(a6), "+" REG(a7), "+" REG(a8), "+" REG(a9), "+" REG(a10), "+" REG(a11)); \
    }                                                                                              \
    double seconds = now() - start;                                                                \
    volatile float sink = FIRST(a0) + FIRST(a1) + FIRST(a2) + FIRST(a3) + FIRST(a4) + FIRST(a5)    \
                        + FIRST(a6) + FIRST(a7) + FIRST(a8) + FIRST(a9) + FIRST(a10) + FIRST(a11); \
    (void)sink;                                                                                    \
    return (double)ITERATIONS * 12 * LANES / seconds / 1e9;

#if defined(__x86_64__)
#define XMM(x) "x"(x)
#define ZMM(x) "v"(x)
__attribute__((target("avx2,fma"))) static double avx2(void) {
    PEAK(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_cvtss_f32, 8, XMM)
}

__attribute__((target("avx512f"))) static double avx512(void) {
    PEAK(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_cvtss_f32, 16, ZMM)
}
#endif

int main(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    printf("{");
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) printf("\"avx2\": %.2f", avx2());
    if (__builtin_cpu_supports("avx512f")) printf(", \"avx512\": %.2f", avx512());
    printf("}\n");
#else
    printf("{}\n");
#endif
    return 0;
}
