#include "CDirectConv.h"

#include <math.h>
#include <string.h>

/* Band-limited resampling of one block by a fixed ratio: each output sample is the input under a
 * Kaiser-windowed sinc whose cutoff is the lower of the two Nyquist frequencies (times the
 * passband share), read from a table of `phases` + 1 sub-sample positions with linear
 * interpolation between neighbours. What libsamplerate's sinc converters compute, in float with
 * the taps vectorized: canonicalizing a window by resampling must cost a small share of one
 * classifier call, and libsamplerate's fastest converter costs 40-120 % of a YAMNet call
 * (docs/benchmarks.md). */

enum { ZERO_CROSSINGS = 16, PHASES = 128 };
static const double PASSBAND = 0.9, KAISER_BETA = 9.0; /* stopband about -90 dB */

typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef float v8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef float v4 __attribute__((vector_size(16), aligned(4), may_alias));

static size_t width(void) {
    const char *isa = equivd_conv_isa();
    return !strcmp(isa, "avx512") ? 16 : !strcmp(isa, "avx2") ? 8 : 4;
}

static double cutoff(double ratio) { return (ratio < 1 ? ratio : 1) * PASSBAND; }

size_t equivd_sinc_taps(double ratio) {
    size_t taps = 2 * (size_t)ceil(ZERO_CROSSINGS / cutoff(ratio)), w = width();
    return (taps + w - 1) / w * w;
}

size_t equivd_sinc_half_width(double ratio) { return equivd_sinc_taps(ratio) / 2; }

size_t equivd_sinc_table_count(double ratio) { return (PHASES + 1) * equivd_sinc_taps(ratio); }

/* Modified Bessel function of the first kind, order 0 (its series converges fast for x < 20). */
static double bessel_i0(double x) {
    double sum = 1, term = 1;
    for (int k = 1; k < 50; k++) {
        term *= (x / (2 * k)) * (x / (2 * k));
        sum += term;
    }
    return sum;
}

void equivd_sinc_table(double ratio, float *table) {
    const size_t taps = equivd_sinc_taps(ratio);
    const double c = cutoff(ratio), half = taps / 2.0;
    for (size_t p = 0; p <= PHASES; p++)
        for (size_t k = 0; k < taps; k++) {
            /* Input sample k of the block lies d samples from the output's position. */
            double d = (double)k - half + 1 - (double)p / PHASES;
            double u = d / half, x = M_PI * c * d;
            double window = fabs(u) < 1 ? bessel_i0(KAISER_BETA * sqrt(1 - u * u)) / bessel_i0(KAISER_BETA) : 0;
            table[p * taps + k] = (float)(c * (d == 0 ? 1 : sin(x) / x) * window);
        }
}

/* Lane sums as a tree of halves: the serial sum of lanes, one dependent add per lane, cost more
 * than the taps themselves. */
static inline float sum_v4(v4 s) {
    v4 t = s + __builtin_shufflevector(s, s, 2, 3, 0, 1);
    return t[0] + t[1];
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) static inline float sum_v8(v8 s) {
    return sum_v4(__builtin_shufflevector(s, s, 0, 1, 2, 3) + __builtin_shufflevector(s, s, 4, 5, 6, 7));
}

__attribute__((target("avx512f"))) static inline float sum_v16(v16 s) {
    return sum_v8(__builtin_shufflevector(s, s, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(s, s, 8, 9, 10, 11, 12, 13, 14, 15));
}
#endif

/* Outputs [0, count): output n is the sum over k of in[first + k] times the filter interpolated
 * between its two nearest phases; `padded` holds `taps` zeros before and after the input. */
#define SINC_LOOP(NAME, VEC, VW, SUM, ATTR)                                                                 \
    ATTR static void NAME(double ratio, const float *table, const float *padded, size_t input_count,        \
                          double start, float *output, size_t count, size_t taps) {                         \
        const ptrdiff_t half = (ptrdiff_t)taps / 2;                                                         \
        const double step = 1 / ratio; /* a multiply per output, not a divide */                            \
        for (size_t n = 0; n < count; n++) {                                                                \
            double t = start + (double)n * step;                                                            \
            double whole = floor(t), p = (t - whole) * PHASES;                                              \
            size_t phase = (size_t)p;                                                                       \
            ptrdiff_t first = (ptrdiff_t)whole - half + 1;                                                  \
            if (first + (ptrdiff_t)taps <= 0 || first >= (ptrdiff_t)input_count) {                          \
                output[n] = 0;                                                                              \
                continue;                                                                                   \
            }                                                                                               \
            const float *in = padded + taps + first, *lo = table + phase * taps, *hi = lo + taps;           \
            float a = (float)(p - phase);                                                                   \
            VEC acc = {0};                                                                                  \
            for (size_t k = 0; k < taps; k += VW) {                                                         \
                VEC l = *(const VEC *)(lo + k), h = *(const VEC *)(hi + k);                                 \
                acc += *(const VEC *)(in + k) * (l + a * (h - l));                                          \
            }                                                                                               \
            output[n] = SUM(acc);                                                                           \
        }                                                                                                   \
    }

#if defined(__x86_64__) || defined(__i386__)
SINC_LOOP(resample_avx512, v16, 16, sum_v16, __attribute__((target("avx512f"))))
SINC_LOOP(resample_avx2, v8, 8, sum_v8, __attribute__((target("avx2,fma"))))
#endif
SINC_LOOP(resample_v4, v4, 4, sum_v4, )

void equivd_sinc_resample(double ratio, const float *table, const float *input, size_t input_count, double start,
                          float *output, size_t output_count, float *scratch) {
    const size_t taps = equivd_sinc_taps(ratio);
    /* The input with `taps` zeros on each side, so every output reads whole vectors in bounds. */
    memset(scratch, 0, taps * sizeof *scratch);
    memcpy(scratch + taps, input, input_count * sizeof *scratch);
    memset(scratch + taps + input_count, 0, taps * sizeof *scratch);
#if defined(__x86_64__) || defined(__i386__)
    size_t w = width();
    if (w == 16) return resample_avx512(ratio, table, scratch, input_count, start, output, output_count, taps);
    if (w == 8) return resample_avx2(ratio, table, scratch, input_count, start, output, output_count, taps);
#endif
    resample_v4(ratio, table, scratch, input_count, start, output, output_count, taps);
}

size_t equivd_sinc_scratch(double ratio, size_t input_count) { return input_count + 2 * equivd_sinc_taps(ratio); }
