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
 * (its choice, equivd_conv_isa(), is followed here). */

typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef float v8 __attribute__((vector_size(32), aligned(4)));
typedef float v4 __attribute__((vector_size(16), aligned(4)));

/* y[m][n] = sum_k w[m][k] * xt[n][k], for rows m0 .. m0 + 3 (all of them exist) and positions
 * n0 .. n0 + 3 (`live` of them exist), K a multiple of the vector width VW. */
#define POINTWISE_BLOCK(NAME, VEC, VW, ATTR)                                                                  \
    ATTR static void NAME(const float *w, const float *xt, float *y, size_t K, size_t N, size_t m0, size_t n0, \
                          size_t live) {                                                                      \
        VEC acc[4][4] = {{{0}}};                                                                              \
        for (size_t k = 0; k < K; k += VW) {                                                                  \
            VEC a[4], b[4];                                                                                   \
            for (int i = 0; i < 4; i++) a[i] = *(const VEC *)(w + (m0 + i) * K + k);                          \
            for (size_t j = 0; j < live; j++) b[j] = *(const VEC *)(xt + (n0 + j) * K + k);                   \
            for (size_t j = live; j < 4; j++) b[j] = (VEC){0};                                                \
            for (int i = 0; i < 4; i++)                                                                       \
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];                                         \
        }                                                                                                     \
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
    return k * positions + 4 * k;
}

void equivd_pointwise(const float *weights, const float *input, float *output, size_t filters, size_t channels,
                      size_t positions, float *scratch) {
    pthread_once(&chosen, choose_once);
    const size_t K = (channels + width - 1) / width * width, N = positions;
    /* Positions transposed, each padded with zeros to a whole number of vectors. */
    float *xt = scratch, *rows = scratch + K * N;
    for (size_t n = 0; n < N; n++) {
        for (size_t k = 0; k < channels; k++) xt[n * K + k] = input[k * N + n];
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

/* Each channel: y[oy][ox] = sum over ky, kx of w[ky][kx] * x[oy*sy - pt + ky*dy][ox*sx - pl + kx*dx],
 * taps outside the input skipped (zero padding); a tap at a time over whole rows. */
void equivd_depthwise(const equivd_depthwise_job *job) {
    const size_t ih = job->input_height, iw = job->input_width, oh = job->output_height, ow = job->output_width;
    const ptrdiff_t sy = (ptrdiff_t)job->stride_y, sx = (ptrdiff_t)job->stride_x;
    for (size_t c = 0; c < job->channels; c++) {
        const float *x = job->input + c * ih * iw;
        const float *w = job->weights + c * job->kernel_height * job->kernel_width;
        float *y = job->output + c * oh * ow;
        for (size_t i = 0; i < oh * ow; i++) y[i] = 0;
        for (size_t ky = 0; ky < job->kernel_height; ky++)
            for (size_t kx = 0; kx < job->kernel_width; kx++) {
                const float weight = w[ky * job->kernel_width + kx];
                const ptrdiff_t dy = (ptrdiff_t)(ky * job->dilation_y) - (ptrdiff_t)job->pad_top;
                const ptrdiff_t dx = (ptrdiff_t)(kx * job->dilation_x) - (ptrdiff_t)job->pad_left;
                /* Output columns whose input column ox*sx + dx lies in [0, iw). */
                ptrdiff_t x0 = dx >= 0 ? 0 : (-dx + sx - 1) / sx;
                ptrdiff_t x1 = ((ptrdiff_t)iw - dx + sx - 1) / sx;
                if (x1 > (ptrdiff_t)ow) x1 = (ptrdiff_t)ow;
                for (size_t oy = 0; oy < oh; oy++) {
                    ptrdiff_t iy = (ptrdiff_t)oy * sy + dy;
                    if (iy < 0 || iy >= (ptrdiff_t)ih) continue;
                    const float *row = x + iy * (ptrdiff_t)iw + dx;
                    float *out = y + oy * ow;
                    if (sx == 1)
                        for (ptrdiff_t ox = x0; ox < x1; ox++) out[ox] += weight * row[ox];
                    else
                        for (ptrdiff_t ox = x0; ox < x1; ox++) out[ox] += weight * row[ox * sx];
                }
            }
    }
}
