#include "CDirectConv.h"

#include <math.h>
#include <pthread.h>
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

/* One output: sum over k of in[first + k] * interpolated filter; `in` holds every index read. */
#define SINC_DOT(NAME, VEC, VW, ATTR)                                                                    \
    ATTR static float NAME(const float *in, const float *lo, const float *hi, float a, size_t taps) {   \
        VEC acc = {0};                                                                                   \
        for (size_t k = 0; k < taps; k += VW) {                                                          \
            VEC l = *(const VEC *)(lo + k), h = *(const VEC *)(hi + k);                                  \
            acc += *(const VEC *)(in + k) * (l + a * (h - l));                                           \
        }                                                                                                \
        float sum = 0;                                                                                   \
        for (int i = 0; i < VW; i++) sum += acc[i];                                                      \
        return sum;                                                                                      \
    }

#if defined(__x86_64__) || defined(__i386__)
SINC_DOT(dot_avx512, v16, 16, __attribute__((target("avx512f"))))
SINC_DOT(dot_avx2, v8, 8, __attribute__((target("avx2,fma"))))
#endif
SINC_DOT(dot_v4, v4, 4, )

static float (*dot)(const float *, const float *, const float *, float, size_t);
static pthread_once_t chosen = PTHREAD_ONCE_INIT;

static void choose_once(void) {
    dot = dot_v4;
#if defined(__x86_64__) || defined(__i386__)
    size_t w = width();
    if (w == 16) dot = dot_avx512;
    else if (w == 8) dot = dot_avx2;
#endif
}

void equivd_sinc_resample(double ratio, const float *table, const float *input, size_t input_count, double start,
                          float *output, size_t output_count, float *scratch) {
    pthread_once(&chosen, choose_once);
    const size_t taps = equivd_sinc_taps(ratio), half = taps / 2;
    /* The input with `taps` zeros on each side, so every output reads whole vectors in bounds. */
    memset(scratch, 0, taps * sizeof *scratch);
    memcpy(scratch + taps, input, input_count * sizeof *scratch);
    memset(scratch + taps + input_count, 0, taps * sizeof *scratch);
    for (size_t n = 0; n < output_count; n++) {
        double t = start + (double)n / ratio;
        double whole = floor(t), p = (t - whole) * PHASES;
        size_t phase = (size_t)p;
        ptrdiff_t first = (ptrdiff_t)whole - (ptrdiff_t)half + 1;
        if (first + (ptrdiff_t)taps <= 0 || first >= (ptrdiff_t)input_count) {
            output[n] = 0;
            continue;
        }
        output[n] = dot(scratch + taps + first, table + phase * taps, table + (phase + 1) * taps, (float)(p - phase), taps);
    }
}

size_t equivd_sinc_scratch(double ratio, size_t input_count) { return input_count + 2 * equivd_sinc_taps(ratio); }
