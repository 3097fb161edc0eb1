#include "CDirectConv.h"

#include <pthread.h>
#include <string.h>

/* The two convolutions a MobileNet's layers are made of, where sgemm does badly:
 *
 * - pointwise (1x1) over few positions: sgemm with N of 6 to 96 spends its time packing the
 *   weights, which are read once anyway. Here each block of 4 weight rows is streamed from memory
 *   once and reused, from L1, for every position; the positions are transposed first so that both
 *   operands of each dot product are contiguous.
 * - depthwise: one filter per channel, as many sgemm calls of M = 1 as channels.
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
DEPTHWISE_NHWC(depthwise_avx512, v16, 16, __attribute__((target("avx512f"))))
DEPTHWISE_NHWC(depthwise_avx2, v8, 8, __attribute__((target("avx2,fma"))))
#endif
DEPTHWISE_NHWC(depthwise_v4, v4, 4, )

static size_t padded_channels(size_t channels) {
    pthread_once(&chosen, choose_once);
    return (channels + width - 1) / width * width;
}

size_t equivd_depthwise_scratch(const equivd_depthwise_job *job) {
    size_t taps = job->kernel_height * job->kernel_width;
    size_t planes = job->input_height * job->input_width + job->output_height * job->output_width + taps;
    return padded_channels(job->channels) * planes;
}

/* Transposed to channels last (channels padded with zeros to whole vectors), computed there, and
 * transposed back. */
void equivd_depthwise(const equivd_depthwise_job *job, float *scratch) {
    const size_t C = padded_channels(job->channels), channels = job->channels;
    const size_t in_plane = job->input_height * job->input_width, out_plane = job->output_height * job->output_width;
    const size_t taps = job->kernel_height * job->kernel_width;
    float *xt = scratch, *yt = xt + in_plane * C, *wt = yt + out_plane * C;
    for (size_t p = 0; p < in_plane; p++)
        for (size_t c = 0; c < C; c++) xt[p * C + c] = c < channels ? job->input[c * in_plane + p] : 0;
    for (size_t t = 0; t < taps; t++)
        for (size_t c = 0; c < C; c++) wt[t * C + c] = c < channels ? job->weights[c * taps + t] : 0;
#if defined(__x86_64__) || defined(__i386__)
    if (width == 16) depthwise_avx512(job, xt, wt, yt, C);
    else if (width == 8) depthwise_avx2(job, xt, wt, yt, C);
    else
#endif
        depthwise_v4(job, xt, wt, yt, C);
    for (size_t c = 0; c < channels; c++)
        for (size_t p = 0; p < out_plane; p++) job->output[c * out_plane + p] = yt[p * C + c];
}
