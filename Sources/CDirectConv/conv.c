#include "CDirectConv.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Architecture guards, as MLAS has them: each vector kernel is compiled only for the
 * architecture whose intrinsics it uses; the portable kernel builds everywhere. */
#if defined(__x86_64__) || defined(__i386__)
#define EQUIVD_CONV_X86 1
#include <immintrin.h>
#elif defined(__aarch64__)
#define EQUIVD_CONV_ARM64 1
#include <arm_neon.h>
#endif

/* Register blocking: R filters × V vectors of positions stay in accumulators for a whole
 * reduction over channels and taps, so each input vector loaded feeds R multiply-adds. AVX2 has
 * half the registers of AVX-512 and blocks 6 filters (R256) instead of 8. */
enum { R = 8, V512 = 3, R256 = 6, V256 = 2, PORTABLE_STEP = 8 };

/* The filters of block b (of `block` filters) that exist. */
static int filters_in(const equivd_conv_job *job, size_t b, int block) {
    size_t left = job->filters - b * block;
    return left < (size_t)block ? (int)left : block;
}

/* Stores the valid lanes of `count` values at grid position p (a multiple of 8) for filter f:
 * bias, ReLU, then each valid lane to the next output index. */
static void store_lanes(const equivd_conv_job *job, size_t f, size_t p, const float *values, int count) {
    const equivd_conv_lanes *lanes = &job->lanes[p / 16];
    unsigned shift = p % 16;
    uint32_t mask = lanes->mask >> shift;
    if (!mask) return;
    float *out = job->output + f * job->output_plane + lanes->first + __builtin_popcount(lanes->mask & ((1u << shift) - 1));
    float bias = job->bias ? job->bias[f] : 0.0f;
    for (int i = 0; i < count; i++) {
        if (!(mask >> i & 1)) continue;
        float v = values[i] + bias;
        *out++ = job->relu && v < 0 ? 0 : v;
    }
}

#if EQUIVD_CONV_X86
__attribute__((target("avx512f"))) static void conv_avx512(const equivd_conv_job *job, size_t steps) {
    const size_t channels = job->channels, taps = job->taps, plane = job->plane;
    const ptrdiff_t *offsets = job->offsets;
    const __m512 zero = _mm512_setzero_ps();
    for (size_t b = 0; b * R < job->filters; b++) {
        const float *wb = job->packed + b * channels * taps * R;
        const int live = filters_in(job, b, R);
        for (size_t s = 0; s < steps; s++) {
            size_t p = s * 16 * V512;
            __m512 acc[R][V512];
            for (int r = 0; r < R; r++)
                for (int v = 0; v < V512; v++) acc[r][v] = zero;
            const float *w = wb;
            for (size_t c = 0; c < channels; c++) {
                const float *ic = job->input + c * plane + p;
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
            for (int v = 0; v < V512; v++) {
                const equivd_conv_lanes lanes = job->lanes[p / 16 + v];
                if (!lanes.mask) continue;
                const __mmask16 valid = (__mmask16)lanes.mask;
                const __mmask16 packed_lanes = (__mmask16)((1u << __builtin_popcount(lanes.mask)) - 1);
                /* Constant bounds and no early exit: the loop unrolls and acc stays in registers. */
                for (int r = 0; r < R; r++) {
                    if (r < live) {
                        size_t f = b * R + r;
                        __m512 y = _mm512_add_ps(acc[r][v], _mm512_set1_ps(job->bias ? job->bias[f] : 0.0f));
                        if (job->relu) y = _mm512_max_ps(y, zero);
                        _mm512_mask_storeu_ps(job->output + f * job->output_plane + lanes.first, packed_lanes,
                                              _mm512_maskz_compress_ps(valid, y));
                    }
                }
            }
        }
    }
}

/* For each mask of 8 lanes, the permutation that packs its set lanes to the front. */
static int32_t compress256[256][8];

static void compress256_init(void) {
    for (int m = 0; m < 256; m++) {
        int n = 0;
        for (int i = 0; i < 8; i++)
            if (m >> i & 1) compress256[m][n++] = i;
        while (n < 8) compress256[m][n++] = 0;
    }
}

/* Bias, ReLU, then the valid lanes of y (positions p … p + 7, p a multiple of 8) packed to the
 * next output indices of filter f: one permute and one masked store, no per-lane branches. */
__attribute__((target("avx2,fma"))) static inline void store_avx2(const equivd_conv_job *job, size_t f, size_t p, __m256 y) {
    const equivd_conv_lanes *lanes = &job->lanes[p / 16];
    const unsigned shift = p % 16;
    const unsigned mask = lanes->mask >> shift & 0xff;
    if (!mask) return;
    if (job->bias) y = _mm256_add_ps(y, _mm256_set1_ps(job->bias[f]));
    if (job->relu) y = _mm256_max_ps(y, _mm256_setzero_ps());
    const __m256i order = _mm256_loadu_si256((const __m256i *)compress256[mask]);
    const int count = __builtin_popcount(mask);
    const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    float *out = job->output + f * job->output_plane + lanes->first + __builtin_popcount(lanes->mask & ((1u << shift) - 1));
    _mm256_maskstore_ps(out, keep, _mm256_permutevar8x32_ps(y, order));
}

/* Two vectors of positions × six filters per step: 12 accumulators, the two inputs and the
 * weights fill the 16 ymm registers, and each tap costs 8 loads for 12 multiply-adds, so the FMA
 * ports, not the load ports, set the pace (8 filters × 1 vector cost 9 loads for 8). */
__attribute__((target("avx2,fma"))) static void conv_avx2(const equivd_conv_job *job, size_t steps) {
    const size_t channels = job->channels, taps = job->taps, plane = job->plane;
    const ptrdiff_t *offsets = job->offsets;
    for (size_t b = 0; b * R256 < job->filters; b++) {
        const float *wb = job->packed + b * channels * taps * R256;
        const int live = filters_in(job, b, R256);
        for (size_t s = 0; s < steps; s++) {
            const size_t p = s * 8 * V256;
            __m256 acc[R256][V256];
            for (int r = 0; r < R256; r++)
                for (int v = 0; v < V256; v++) acc[r][v] = _mm256_setzero_ps();
            const float *w = wb;
            for (size_t c = 0; c < channels; c++) {
                const float *ic = job->input + c * plane + p;
                for (size_t t = 0; t < taps; t++, w += R256) {
                    const float *src = ic + offsets[t];
                    const __m256 x0 = _mm256_loadu_ps(src), x1 = _mm256_loadu_ps(src + 8);
                    for (int r = 0; r < R256; r++) {
                        const __m256 wr = _mm256_broadcast_ss(w + r);
                        acc[r][0] = _mm256_fmadd_ps(wr, x0, acc[r][0]);
                        acc[r][1] = _mm256_fmadd_ps(wr, x1, acc[r][1]);
                    }
                }
            }
            /* Unrolled whole, or acc is kept in memory through the reduction above. */
#pragma GCC unroll 16
            for (int r = 0; r < R256; r++)
#pragma GCC unroll 16
                for (int v = 0; v < V256; v++)
                    if (r < live) store_avx2(job, b * R256 + r, p + 8 * v, acc[r][v]);
        }
    }
}

#endif

#if EQUIVD_CONV_ARM64
/* Two vectors of 4 positions per step: 16 accumulators, 2 inputs and the weights stay within
 * NEON's 32 registers. Every aarch64 CPU has NEON, so it needs no run-time check. */
static void conv_neon(const equivd_conv_job *job, size_t steps) {
    const size_t channels = job->channels, taps = job->taps, plane = job->plane;
    const ptrdiff_t *offsets = job->offsets;
    for (size_t b = 0; b * R < job->filters; b++) {
        const float *wb = job->packed + b * channels * taps * R;
        const int live = filters_in(job, b, R);
        for (size_t s = 0; s < steps; s++) {
            size_t p = s * 8;
            float32x4_t acc[R][2];
            for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = vdupq_n_f32(0);
            const float *w = wb;
            for (size_t c = 0; c < channels; c++) {
                const float *ic = job->input + c * plane + p;
                for (size_t t = 0; t < taps; t++, w += R) {
                    const float *src = ic + offsets[t];
                    float32x4_t x0 = vld1q_f32(src), x1 = vld1q_f32(src + 4);
                    for (int r = 0; r < R; r++) {
                        acc[r][0] = vfmaq_n_f32(acc[r][0], x0, w[r]);
                        acc[r][1] = vfmaq_n_f32(acc[r][1], x1, w[r]);
                    }
                }
            }
            float values[8];
            for (int r = 0; r < R; r++) {  /* as in conv_avx512: unrolled, acc in registers */
                if (r < live) {
                    vst1q_f32(values, acc[r][0]);
                    vst1q_f32(values + 4, acc[r][1]);
                    store_lanes(job, b * R + r, p, values, 8);
                }
            }
        }
    }
}
#endif

static void conv_portable(const equivd_conv_job *job, size_t steps) {
    for (size_t b = 0; b * R < job->filters; b++) {
        const float *wb = job->packed + b * job->channels * job->taps * R;
        const int live = filters_in(job, b, R);
        for (size_t s = 0; s < steps; s++) {
            size_t p = s * PORTABLE_STEP;
            float acc[R][PORTABLE_STEP] = {{0}};
            const float *w = wb;
            for (size_t c = 0; c < job->channels; c++) {
                const float *ic = job->input + c * job->plane + p;
                for (size_t t = 0; t < job->taps; t++, w += R) {
                    const float *src = ic + job->offsets[t];
                    for (int r = 0; r < R; r++)
                        for (int i = 0; i < PORTABLE_STEP; i++) acc[r][i] += w[r] * src[i];
                }
            }
            for (int r = 0; r < live; r++) store_lanes(job, b * R + r, p, acc[r], PORTABLE_STEP);
        }
    }
}

static void (*kernel)(const equivd_conv_job *, size_t);
static size_t step;
static int block = R;  /* filters per packed block of the chosen kernel */
static const char *isa;
static pthread_once_t chosen = PTHREAD_ONCE_INIT;

/* The widest kernel the CPU runs; EQUIVD_CONV_ISA names a narrower one (avx2 or portable on x86,
 * portable on aarch64) for benchmarks and for checking each kernel on one machine. */
static void choose_once(void) {
    const char *asked = getenv("EQUIVD_CONV_ISA");
    int portable = asked && !strcmp(asked, "portable");
    kernel = conv_portable, step = PORTABLE_STEP, isa = "portable";
#if EQUIVD_CONV_X86
    __builtin_cpu_init();
    int avx2 = !portable && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && !(asked && !strcmp(asked, "avx2"));
    if (avx512) {
        kernel = conv_avx512, step = 16 * V512, isa = "avx512";
    } else if (avx2) {
        compress256_init();
        kernel = conv_avx2, step = 8 * V256, block = R256, isa = "avx2";
    }
#elif EQUIVD_CONV_ARM64
    if (!portable) kernel = conv_neon, step = 8, isa = "neon";
#endif
}

static void choose(void) { pthread_once(&chosen, choose_once); }

size_t equivd_conv_step(void) {
    choose();
    return step;
}

const char *equivd_conv_isa(void) {
    choose();
    return isa;
}

size_t equivd_conv_packed_count(size_t filters, size_t channels, size_t taps) {
    choose();
    return (filters + block - 1) / block * block * channels * taps;
}

void equivd_conv_pack(const float *weights, size_t filters, size_t channels, size_t taps, float *packed) {
    choose();
    size_t blocks = (filters + block - 1) / block;
    for (size_t b = 0; b < blocks; b++)
        for (size_t c = 0; c < channels; c++)
            for (size_t t = 0; t < taps; t++)
                for (size_t r = 0; r < (size_t)block; r++) {
                    size_t f = b * block + r;
                    *packed++ = f < filters ? weights[(f * channels + c) * taps + t] : 0.0f;
                }
}

void equivd_phases_fill(const equivd_phases *s, const float *input, float *output) {
    const size_t sy = s->stride_y, sx = s->stride_x, height = s->phase_height, width = s->phase_width;
    const size_t ih = s->input_height, iw = s->input_width;
    float *out = output;
    if (sy == 1 && sx == 1 && width == iw && s->pad_left == 0 && height >= s->pad_top + ih) {
        /* No stride and no columns of padding (a 1×1 Conv): each plane is its rows of padding
         * around one block copy of the image. */
        const size_t below = height - s->pad_top - ih;
        for (size_t c = 0; c < s->channels; c++, out += height * width) {
            memset(out, 0, s->pad_top * width * sizeof *out);
            memcpy(out + s->pad_top * width, input + c * ih * iw, ih * iw * sizeof *out);
            memset(out + (s->pad_top + ih) * width, 0, below * width * sizeof *out);
        }
        return;
    }
    for (size_t c = 0; c < s->channels; c++) {
        const float *image = input + c * ih * iw;
        for (size_t ry = 0; ry < sy; ry++)
            for (size_t rx = 0; rx < sx; rx++) {
                /* Columns first … end of this phase read the input: column · sx + rx − pad_left in [0, iw). */
                const size_t first = rx >= s->pad_left ? 0 : (s->pad_left - rx + sx - 1) / sx;
                size_t end = s->pad_left + iw > rx ? (s->pad_left + iw - 1 - rx) / sx + 1 : 0;
                if (end > width) end = width;
                if (end < first) end = first;
                for (size_t row = 0; row < height; row++, out += width) {
                    const size_t y = row * sy + ry;  /* in the padded plane */
                    if (y < s->pad_top || y - s->pad_top >= ih) {
                        for (size_t i = 0; i < width; i++) out[i] = 0.0f;
                        continue;
                    }
                    /* Plain loops, no library calls: rows of late layers are a few floats long. */
                    const float *line = image + (y - s->pad_top) * iw + first * sx + rx - s->pad_left;
                    for (size_t i = 0; i < first; i++) out[i] = 0.0f;
                    if (sx == 1)
                        for (size_t i = first; i < end; i++) out[i] = line[i - first];
                    else if (sx == 2) /* a constant stride, which the compiler vectorizes */
                        for (size_t i = first; i < end; i++) out[i] = line[(i - first) * 2];
                    else
                        for (size_t i = first; i < end; i++) out[i] = line[(i - first) * sx];
                    for (size_t i = end; i < width; i++) out[i] = 0.0f;
                }
            }
    }
}

void equivd_phases_offsets(const equivd_phases *s, size_t kernel_height, size_t kernel_width, size_t dilation_y,
                           size_t dilation_x, ptrdiff_t *offsets) {
    const size_t plane = s->phase_height * s->phase_width;
    for (size_t ky = 0; ky < kernel_height; ky++)
        for (size_t kx = 0; kx < kernel_width; kx++) {
            const size_t y = ky * dilation_y, x = kx * dilation_x;
            *offsets++ = (ptrdiff_t)(((y % s->stride_y) * s->stride_x + x % s->stride_x) * plane +
                                     y / s->stride_y * s->phase_width + x / s->stride_x);
        }
}

void equivd_conv(const equivd_conv_job *job) {
    choose();
    kernel(job, (job->positions + step - 1) / step);
}
