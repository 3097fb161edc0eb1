#include "CDirectConv.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Register blocking: R filters × V vectors of positions stay in accumulators for a whole
 * reduction over channels and taps, so each input vector loaded feeds R multiply-adds. */
enum { R = 8, V512 = 3, PORTABLE_STEP = 8 };

typedef void (*conv_kernel)(const float *, size_t, size_t, const ptrdiff_t *, size_t, const float *, size_t,
                            float *, size_t, size_t);

__attribute__((target("avx512f"))) static void conv_avx512(
    const float *in, size_t channels, size_t plane, const ptrdiff_t *offsets, size_t taps, const float *packed,
    size_t blocks, float *out, size_t out_stride, size_t steps) {
    for (size_t b = 0; b < blocks; b++) {
        const float *wb = packed + b * channels * taps * R;
        float *ob = out + b * R * out_stride;
        for (size_t s = 0; s < steps; s++) {
            size_t p = s * 16 * V512;
            __m512 acc[R][V512];
            for (int r = 0; r < R; r++)
                for (int v = 0; v < V512; v++) acc[r][v] = _mm512_setzero_ps();
            const float *w = wb;
            for (size_t c = 0; c < channels; c++) {
                const float *ic = in + c * plane + p;
                for (size_t t = 0; t < taps; t++, w += R) {
                    const float *src = ic + offsets[t];
                    __m512 x[V512];
                    for (int v = 0; v < V512; v++) x[v] = _mm512_loadu_ps(src + 16 * v);
                    for (int r = 0; r < R; r++) {
                        __m512 wr = _mm512_set1_ps(w[r]);
                        for (int v = 0; v < V512; v++) acc[r][v] = _mm512_fmadd_ps(wr, x[v], acc[r][v]);
                    }
                }
            }
            for (int r = 0; r < R; r++)
                for (int v = 0; v < V512; v++) _mm512_storeu_ps(ob + r * out_stride + p + 16 * v, acc[r][v]);
        }
    }
}

/* One vector of positions per step: 8 accumulators, the input and a weight fit the 16 ymm
 * registers (more vectors per step spill on AVX2, and cost more than the loads they save). */
__attribute__((target("avx2,fma"))) static void conv_avx2(
    const float *in, size_t channels, size_t plane, const ptrdiff_t *offsets, size_t taps, const float *packed,
    size_t blocks, float *out, size_t out_stride, size_t steps) {
    for (size_t b = 0; b < blocks; b++) {
        const float *wb = packed + b * channels * taps * R;
        float *ob = out + b * R * out_stride;
        for (size_t s = 0; s < steps; s++) {
            size_t p = s * 8;
            __m256 acc[R];
            for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
            const float *w = wb;
            for (size_t c = 0; c < channels; c++) {
                const float *ic = in + c * plane + p;
                for (size_t t = 0; t < taps; t++, w += R) {
                    __m256 x = _mm256_loadu_ps(ic + offsets[t]);
                    for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(w + r), x, acc[r]);
                }
            }
            for (int r = 0; r < R; r++) _mm256_storeu_ps(ob + r * out_stride + p, acc[r]);
        }
    }
}

static void conv_portable(
    const float *in, size_t channels, size_t plane, const ptrdiff_t *offsets, size_t taps, const float *packed,
    size_t blocks, float *out, size_t out_stride, size_t steps) {
    for (size_t b = 0; b < blocks; b++) {
        const float *wb = packed + b * channels * taps * R;
        float *ob = out + b * R * out_stride;
        for (size_t s = 0; s < steps; s++) {
            size_t p = s * PORTABLE_STEP;
            float acc[R][PORTABLE_STEP] = {{0}};
            const float *w = wb;
            for (size_t c = 0; c < channels; c++) {
                const float *ic = in + c * plane + p;
                for (size_t t = 0; t < taps; t++, w += R) {
                    const float *src = ic + offsets[t];
                    for (int r = 0; r < R; r++)
                        for (int i = 0; i < PORTABLE_STEP; i++) acc[r][i] += w[r] * src[i];
                }
            }
            for (int r = 0; r < R; r++) memcpy(ob + r * out_stride + p, acc[r], sizeof acc[r]);
        }
    }
}

static conv_kernel kernel;
static size_t step;
static const char *isa;
static pthread_once_t chosen = PTHREAD_ONCE_INIT;

/* The widest kernel the CPU runs; EQUIVD_CONV_ISA=avx2 or =portable asks for a narrower one
 * (benchmarks, and checking each kernel on one machine). */
static void choose_once(void) {
    const char *asked = getenv("EQUIVD_CONV_ISA");
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = avx2 && __builtin_cpu_supports("avx512f");
    if (asked && !strcmp(asked, "portable")) avx2 = avx512 = 0;
    if (asked && !strcmp(asked, "avx2")) avx512 = 0;
    if (avx512) {
        kernel = conv_avx512, step = 16 * V512, isa = "avx512";
    } else if (avx2) {
        kernel = conv_avx2, step = 8, isa = "avx2";
    } else {
        kernel = conv_portable, step = PORTABLE_STEP, isa = "portable";
    }
}

static void choose(void) { pthread_once(&chosen, choose_once); }

size_t equivd_conv_filters_per_block(void) { return R; }

size_t equivd_conv_step(void) {
    choose();
    return step;
}

const char *equivd_conv_isa(void) {
    choose();
    return isa;
}

size_t equivd_conv_packed_count(size_t filters, size_t channels, size_t taps) {
    return (filters + R - 1) / R * R * channels * taps;
}

void equivd_conv_pack(const float *weights, size_t filters, size_t channels, size_t taps, float *packed) {
    size_t blocks = (filters + R - 1) / R;
    for (size_t b = 0; b < blocks; b++)
        for (size_t c = 0; c < channels; c++)
            for (size_t t = 0; t < taps; t++)
                for (size_t r = 0; r < R; r++) {
                    size_t f = b * R + r;
                    *packed++ = f < filters ? weights[(f * channels + c) * taps + t] : 0.0f;
                }
}

void equivd_conv_padded(const float *input, size_t channels, size_t plane, const ptrdiff_t *offsets, size_t taps,
                        const float *packed, size_t filters, float *output, size_t out_stride, size_t positions) {
    choose();
    kernel(input, channels, plane, offsets, taps, packed, (filters + R - 1) / R, output, out_stride,
           (positions + step - 1) / step);
}
