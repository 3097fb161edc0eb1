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

/* 12 independent chains: enough to cover FMA latency (4-5 cycles) times two FMA ports. */
enum { CHAINS = 12 };
static const long ITERATIONS = 50 * 1000 * 1000;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static double avx2(void) {
    __m256 acc[CHAINS], b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    double start = now();
    for (long n = 0; n < ITERATIONS; n++) {
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
        __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]), "+x"(acc[4]), "+x"(acc[5]));
    }
    double seconds = now() - start;
    volatile float sink = 0;
    for (int i = 0; i < CHAINS; i++) sink += _mm256_cvtss_f32(acc[i]);
    return (double)ITERATIONS * CHAINS * 8 / seconds / 1e9;
}

__attribute__((target("avx512f"))) static double avx512(void) {
    __m512 acc[CHAINS], b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    double start = now();
    for (long n = 0; n < ITERATIONS; n++) {
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
        __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]), "+v"(acc[5]));
    }
    double seconds = now() - start;
    volatile float sink = 0;
    for (int i = 0; i < CHAINS; i++) sink += _mm512_cvtss_f32(acc[i]);
    return (double)ITERATIONS * CHAINS * 16 / seconds / 1e9;
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
