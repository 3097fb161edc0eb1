#include "CDirectConv.h"

#include <pthread.h>
#include <string.h>

/* The two convolutions a MobileNet's layers are made of, where sgemm does badly:
 *
 * - pointwise (1x1) over few positions: sgemm with N of 6 to 96 spends its time packing the
 *   weights, which are read once anyway. Here each block of 4 weight rows is streamed from memory
 *   once and reused, from L1, for every position; the positions are transposed first so that both
 *   operands of each dot product are contiguous.
 * - depthwise: one filter per channel, as many sgemm calls of M = 1 as channels. Here each
 *   channel's output rows are computed a vector at a time on its stride phases, or, where rows
 *   are narrower than a vector, channels last.
 *
 * Both are written once with GCC vector extensions and compiled for each ISA conv.c picks from
 * (its choice, equivd_conv_isa(), is followed here). The vector types may alias float: the
 * kernels read as vectors what they wrote as floats. */

typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef float v8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef float v4 __attribute__((vector_size(16), aligned(4), may_alias));

/* y[m][n] = sum_k w[m][k] * xt[n][k] for rows m0 .. m0 + 3 and positions n0 .. n0 + 3 (all of
 * which exist in w and xt; only `live` positions are stored), K a multiple of the vector width VW.
 * Fixed trip counts keep the 16 accumulators in registers. */
#define POINTWISE_BLOCK(NAME, VEC, VW, ATTR)                                                                  \
    ATTR static void NAME(const float *w, const float *xt, float *y, size_t K, size_t N, size_t m0, size_t n0, \
                          size_t live) {                                                                      \
        const float *a0 = w + m0 * K, *a1 = a0 + K, *a2 = a1 + K, *a3 = a2 + K;                               \
        const float *b0 = xt + n0 * K, *b1 = b0 + K, *b2 = b1 + K, *b3 = b2 + K;                              \
        VEC c00 = {0}, c01 = {0}, c02 = {0}, c03 = {0}, c10 = {0}, c11 = {0}, c12 = {0}, c13 = {0};           \
        VEC c20 = {0}, c21 = {0}, c22 = {0}, c23 = {0}, c30 = {0}, c31 = {0}, c32 = {0}, c33 = {0};           \
        for (size_t k = 0; k < K; k += VW) {                                                                  \
            VEC x0 = *(const VEC *)(b0 + k), x1 = *(const VEC *)(b1 + k);                                     \
            VEC x2 = *(const VEC *)(b2 + k), x3 = *(const VEC *)(b3 + k);                                     \
            VEC r = *(const VEC *)(a0 + k);                                                                   \
            c00 += r * x0, c01 += r * x1, c02 += r * x2, c03 += r * x3;                                       \
            r = *(const VEC *)(a1 + k);                                                                       \
            c10 += r * x0, c11 += r * x1, c12 += r * x2, c13 += r * x3;                                       \
            r = *(const VEC *)(a2 + k);                                                                       \
            c20 += r * x0, c21 += r * x1, c22 += r * x2, c23 += r * x3;                                       \
            r = *(const VEC *)(a3 + k);                                                                       \
            c30 += r * x0, c31 += r * x1, c32 += r * x2, c33 += r * x3;                                       \
        }                                                                                                     \
        const VEC acc[4][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}}; \
        for (int i = 0; i < 4; i++)                                                                           \
            for (size_t j = 0; j < live; j++) {                                                               \
                float sum = 0;                                                                                \
                for (int l = 0; l < VW; l++) sum += acc[i][j][l];                                             \
                y[(m0 + i) * N + n0 + j] = sum;                                                               \
            }                                                                                                 \
    }

#if defined(__x86_64__) || defined(__i386__)
POINTWISE_BLOCK(block_avx512, v16, 16, __attribute__((target("avx512f"))))
POINTWISE_BLOCK(block_avx2, v8, 8, __attribute__((target("avx2,fma"))))
#endif
POINTWISE_BLOCK(block_v4, v4, 4, ) /* NEON on aarch64, SSE on x86 */

static void (*block)(const float *, const float *, float *, size_t, size_t, size_t, size_t, size_t);
static size_t width;
static pthread_once_t chosen = PTHREAD_ONCE_INIT;

static void choose_once(void) {
    block = block_v4, width = 4;
#if defined(__x86_64__) || defined(__i386__)
    const char *isa = equivd_conv_isa();
    if (!strcmp(isa, "avx512")) block = block_avx512, width = 16;
    else if (!strcmp(isa, "avx2")) block = block_avx2, width = 8;
#endif
}

size_t equivd_pointwise_scratch(size_t channels, size_t positions) {
    pthread_once(&chosen, choose_once);
    size_t k = (channels + width - 1) / width * width;
    return k * ((positions + 3) / 4 * 4) + 4 * k;
}

void equivd_pointwise(const float *weights, const float *input, float *output, size_t filters, size_t channels,
                      size_t positions, float *scratch) {
    pthread_once(&chosen, choose_once);
    const size_t K = (channels + width - 1) / width * width, N = positions, N4 = (N + 3) / 4 * 4;
    /* Positions transposed, each padded with zeros to a whole number of vectors, and zero
     * positions added up to a whole block of 4. */
    float *xt = scratch, *rows = scratch + K * N4;
    for (size_t n = 0; n < N4; n++) {
        for (size_t k = 0; k < channels; k++) xt[n * K + k] = n < N ? input[k * N + n] : 0;
        for (size_t k = channels; k < K; k++) xt[n * K + k] = 0;
    }
    const int padded = K != channels;
    float out[4 * 4];
    for (size_t m = 0; m < filters; m += 4) {
        size_t live_rows = filters - m < 4 ? filters - m : 4;
        if (!padded && live_rows == 4) {
            for (size_t n = 0; n < N; n += 4) block(weights, xt, output, K, N, m, n, N - n < 4 ? N - n : 4);
            continue;
        }
        /* A block whose rows need padding, or that runs past the last filter, goes through a copy. */
        memset(rows, 0, 4 * K * sizeof *rows);
        for (size_t i = 0; i < live_rows; i++) memcpy(rows + i * K, weights + (m + i) * channels, channels * sizeof *rows);
        for (size_t n = 0; n < N; n += 4) {
            size_t live = N - n < 4 ? N - n : 4;
            block(rows, xt + n * K, out, K, 4, 0, 0, live);
            for (size_t i = 0; i < live_rows; i++)
                for (size_t j = 0; j < live; j++) output[(m + i) * N + n + j] = out[i * 4 + j];
        }
    }
}

/* Depthwise on the stride phases of each channel (equivd_phases_fill): every output row is
 * computed a vector of VW positions at a time, each tap one multiply-add of a vector read at its
 * offset, and the row's valid positions stored; lanes past the row's end read the next row and are
 * dropped. Four channels go together, so that four independent sums, not one chain of taps, set
 * the pace; a last group of fewer channels repeats its first one and stores only its own. */
enum { DEPTHWISE_CHANNELS = 4 };
#define DEPTHWISE_ROWS(NAME, VEC, VW, ATTR)                                                                     \
    ATTR static void NAME(const equivd_depthwise_job *job, const float *phases, size_t block,                  \
                          const ptrdiff_t *offsets, size_t taps, size_t phase_width) {                         \
        const size_t oh = job->output_height, ow = job->output_width, C = job->channels;                       \
        for (size_t c0 = 0; c0 < C; c0 += DEPTHWISE_CHANNELS) {                                                \
            const size_t live = C - c0 < DEPTHWISE_CHANNELS ? C - c0 : DEPTHWISE_CHANNELS;                     \
            const float *w[DEPTHWISE_CHANNELS], *in[DEPTHWISE_CHANNELS];                                       \
            for (size_t k = 0; k < DEPTHWISE_CHANNELS; k++) {                                                  \
                const size_t c = c0 + (k < live ? k : 0);                                                      \
                w[k] = job->weights + c * taps, in[k] = phases + c * block;                                    \
            }                                                                                                  \
            for (size_t oy = 0; oy < oh; oy++)                                                                 \
                for (size_t x = 0; x < ow; x += VW) {                                                          \
                    const size_t at = oy * phase_width + x;                                                    \
                    VEC acc[DEPTHWISE_CHANNELS] = {{0}};                                                       \
                    for (size_t t = 0; t < taps; t++) {                                                        \
                        _Pragma("GCC unroll 4") for (int k = 0; k < DEPTHWISE_CHANNELS; k++)                   \
                            acc[k] += w[k][t] * *(const VEC *)(in[k] + at + offsets[t]);                       \
                    }                                                                                          \
                    _Pragma("GCC unroll 4") for (size_t k = 0; k < DEPTHWISE_CHANNELS; k++) {                  \
                        if (k >= live) continue;                                                               \
                        float *out = job->output + ((c0 + k) * oh + oy) * ow + x;                              \
                        if (ow - x >= VW) *(VEC *)out = acc[k];                                                \
                        else memcpy(out, &acc[k], (ow - x) * sizeof(float));                                  \
                    }                                                                                          \
                }                                                                                              \
        }                                                                                                      \
    }

#if defined(__x86_64__) || defined(__i386__)
DEPTHWISE_ROWS(depthwise_rows_avx512, v16, 16, __attribute__((target("avx512f"))))
DEPTHWISE_ROWS(depthwise_rows_avx2, v8, 8, __attribute__((target("avx2,fma"))))
#endif
DEPTHWISE_ROWS(depthwise_rows_v4, v4, 4, )

/* Depthwise, channels last: y[p][c] = sum over valid taps t of w[t][c] * x[q(p, t)][c], the
 * channels innermost so that each multiply-add covers VW channels however small the plane. */
#define DEPTHWISE_NHWC(NAME, VEC, VW, ATTR)                                                                    \
    ATTR static void NAME(const equivd_depthwise_job *job, const float *xt, const float *wt, float *yt, size_t C) { \
        const ptrdiff_t ih = (ptrdiff_t)job->input_height, iw = (ptrdiff_t)job->input_width;                   \
        const size_t kh = job->kernel_height, kw = job->kernel_width;                                          \
        for (size_t oy = 0; oy < job->output_height; oy++)                                                     \
            for (size_t ox = 0; ox < job->output_width; ox++) {                                                \
                float *out = yt + (oy * job->output_width + ox) * C;                                           \
                for (size_t c = 0; c < C; c += VW) *(VEC *)(out + c) = (VEC){0};                               \
                for (size_t ky = 0; ky < kh; ky++) {                                                           \
                    ptrdiff_t iy = (ptrdiff_t)(oy * job->stride_y + ky * job->dilation_y) - (ptrdiff_t)job->pad_top; \
                    if (iy < 0 || iy >= ih) continue;                                                          \
                    for (size_t kx = 0; kx < kw; kx++) {                                                       \
                        ptrdiff_t ix = (ptrdiff_t)(ox * job->stride_x + kx * job->dilation_x) - (ptrdiff_t)job->pad_left; \
                        if (ix < 0 || ix >= iw) continue;                                                      \
                        const float *in = xt + (iy * iw + ix) * (ptrdiff_t)C, *w = wt + (ky * kw + kx) * C;    \
                        for (size_t c = 0; c < C; c += VW)                                                     \
                            *(VEC *)(out + c) += *(const VEC *)(w + c) * *(const VEC *)(in + c);               \
                    }                                                                                          \
                }                                                                                              \
            }                                                                                                  \
    }

#if defined(__x86_64__) || defined(__i386__)
DEPTHWISE_NHWC(depthwise_nhwc_avx512, v16, 16, __attribute__((target("avx512f"))))
DEPTHWISE_NHWC(depthwise_nhwc_avx2, v8, 8, __attribute__((target("avx2,fma"))))
#endif
DEPTHWISE_NHWC(depthwise_nhwc_v4, v4, 4, )

static equivd_phases phases_of(const equivd_depthwise_job *job) {
    const size_t padded_height = (job->output_height - 1) * job->stride_y + (job->kernel_height - 1) * job->dilation_y + 1;
    const size_t padded_width = (job->output_width - 1) * job->stride_x + (job->kernel_width - 1) * job->dilation_x + 1;
    return (equivd_phases){
        .channels = job->channels, .input_height = job->input_height, .input_width = job->input_width,
        .stride_y = job->stride_y, .stride_x = job->stride_x, .pad_top = job->pad_top, .pad_left = job->pad_left,
        .phase_height = (padded_height + job->stride_y - 1) / job->stride_y,
        .phase_width = (padded_width + job->stride_x - 1) / job->stride_x};
}

static size_t padded_channels(size_t channels) { return (channels + width - 1) / width * width; }

/* Rows of at least a vector run on the stride phases; narrower ones, the late layers of a MobileNet
 * (4 × 6 positions, hundreds of channels), channels last, where every multiply-add covers VW
 * channels and no row is shorter than a vector. */
static int by_rows(const equivd_depthwise_job *job) { return job->output_width >= width; }

size_t equivd_depthwise_scratch(const equivd_depthwise_job *job) {
    pthread_once(&chosen, choose_once);
    if (!by_rows(job)) {
        const size_t taps = job->kernel_height * job->kernel_width;
        const size_t planes = job->input_height * job->input_width + job->output_height * job->output_width + taps;
        return padded_channels(job->channels) * planes;
    }
    const equivd_phases p = phases_of(job);
    return p.channels * p.stride_y * p.stride_x * p.phase_height * p.phase_width + width;
}

/* Transposed to channels last (channels padded with zeros to whole vectors), computed there, and
 * transposed back. */
static void depthwise_nhwc(const equivd_depthwise_job *job, float *scratch) {
    const size_t C = padded_channels(job->channels), channels = job->channels;
    const size_t in_plane = job->input_height * job->input_width, out_plane = job->output_height * job->output_width;
    const size_t taps = job->kernel_height * job->kernel_width;
    float *xt = scratch, *yt = xt + in_plane * C, *wt = yt + out_plane * C;
    for (size_t p = 0; p < in_plane; p++)
        for (size_t c = 0; c < C; c++) xt[p * C + c] = c < channels ? job->input[c * in_plane + p] : 0;
    for (size_t t = 0; t < taps; t++)
        for (size_t c = 0; c < C; c++) wt[t * C + c] = c < channels ? job->weights[c * taps + t] : 0;
#if defined(__x86_64__) || defined(__i386__)
    if (width == 16) depthwise_nhwc_avx512(job, xt, wt, yt, C);
    else if (width == 8) depthwise_nhwc_avx2(job, xt, wt, yt, C);
    else
#endif
        depthwise_nhwc_v4(job, xt, wt, yt, C);
    for (size_t c = 0; c < channels; c++)
        for (size_t p = 0; p < out_plane; p++) job->output[c * out_plane + p] = yt[p * C + c];
}

/* The channels split into their stride phases, then each computed there. */
static void depthwise_rows(const equivd_depthwise_job *job, float *scratch) {
    const equivd_phases p = phases_of(job);
    const size_t plane = p.phase_height * p.phase_width, block = p.stride_y * p.stride_x * plane;
    const size_t taps = job->kernel_height * job->kernel_width;
    ptrdiff_t offsets[taps];
    for (size_t ky = 0; ky < job->kernel_height; ky++)
        for (size_t kx = 0; kx < job->kernel_width; kx++) {
            const size_t y = ky * job->dilation_y, x = kx * job->dilation_x;
            offsets[ky * job->kernel_width + kx] = (ptrdiff_t)(((y % p.stride_y) * p.stride_x + x % p.stride_x) * plane +
                                                               y / p.stride_y * p.phase_width + x / p.stride_x);
        }
    equivd_phases_fill(&p, job->input, scratch);
    memset(scratch + p.channels * block, 0, width * sizeof *scratch); /* read past the last row, never stored */
#if defined(__x86_64__) || defined(__i386__)
    if (width == 16) depthwise_rows_avx512(job, scratch, block, offsets, taps, p.phase_width);
    else if (width == 8) depthwise_rows_avx2(job, scratch, block, offsets, taps, p.phase_width);
    else
#endif
        depthwise_rows_v4(job, scratch, block, offsets, taps, p.phase_width);
}

void equivd_depthwise(const equivd_depthwise_job *job, float *scratch) {
    pthread_once(&chosen, choose_once);
    if (by_rows(job)) depthwise_rows(job, scratch);
    else depthwise_nhwc(job, scratch);
}
