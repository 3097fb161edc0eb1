#include "CDirectConv.h"

#include <pthread.h>
#include <string.h>

/* The two convolutions a MobileNet's layers are made of, where sgemm does badly:
 *
 * - pointwise (1x1) over few positions: sgemm with N of 6 to 96 spends its time packing the
 *   weights, which are read once anyway. Here the weights are packed once, at load, in blocks of
 *   2 × VW filters, and each weight vector loaded feeds a tile of positions.
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

/* max(v, 0) lane by lane for any of the vector types: the lanes where v > 0 kept, bit for bit
 * (C's vector extensions have no select that both GCC and clang accept). */
#define RELU(v) ((__typeof__(v))((__typeof__((v) > 0))(v) & ((v) > 0)))

/* Pointwise: output (f, p) for the 2 × VW filters of block b and a tile of up to POINTWISE_TILE
 * positions, from the block's packed weights [c][2 × VW]: each pair of weight vectors loaded feeds
 * every position of the tile (6 positions: 12 accumulators, which fit AVX2's 16 registers), and
 * nothing is reduced across lanes. Positions past the last read the first and are not stored (a dense layer
 * at batch 1 computes six positions for one: its time goes to streaming the weights, measured the
 * same with a tile of one). */
#define POINTWISE_BLOCK(NAME, VEC, VW, POINTWISE_TILE, ATTR)                                                  \
    ATTR static void NAME(const equivd_pointwise_job *job, size_t b, size_t p0) {                             \
        const size_t filters = job->filters, positions = job->positions;                                      \
        const size_t live_filters = filters - b * 2 * VW < 2 * VW ? filters - b * 2 * VW : 2 * VW;            \
        const size_t live = positions - p0 < POINTWISE_TILE ? positions - p0 : POINTWISE_TILE;                \
        const ptrdiff_t step = job->input_channel_stride;                                                     \
        const float *x[POINTWISE_TILE];                                                                       \
        for (size_t j = 0; j < POINTWISE_TILE; j++)                                                           \
            x[j] = job->input + (ptrdiff_t)(p0 + (j < live ? j : 0)) * job->input_position_stride;            \
        VEC low[POINTWISE_TILE] = {{0}}, high[POINTWISE_TILE] = {{0}};                                        \
        const float *w = job->packed + b * job->channels * 2 * VW;                                            \
        for (size_t c = 0; c < job->channels; c++, w += 2 * VW) {                                             \
            __builtin_prefetch(w + 16 * 2 * VW); /* the weights stream from memory: 16 steps ahead */       \
            const VEC w0 = *(const VEC *)w, w1 = *(const VEC *)(w + VW);                                      \
            _Pragma("GCC unroll 16") for (int j = 0; j < POINTWISE_TILE; j++) {                                \
                const float v = x[j][(ptrdiff_t)c * step];                                                    \
                low[j] += w0 * v, high[j] += w1 * v;                                                          \
            }                                                                                                 \
        }                                                                                                     \
        _Pragma("GCC unroll 16") for (size_t j = 0; j < POINTWISE_TILE; j++) {                                 \
            if (j >= live) continue;                                                                          \
            float sums[2 * VW];                                                                               \
            memcpy(sums, &low[j], sizeof low[j]), memcpy(sums + VW, &high[j], sizeof high[j]);                \
            float *out = job->output + (ptrdiff_t)(p0 + j) * job->output_position_stride;                     \
            for (size_t r = 0; r < live_filters; r++) out[(ptrdiff_t)(b * 2 * VW + r) * job->output_filter_stride] = sums[r]; \
        }                                                                                                     \
    }

#if defined(__x86_64__) || defined(__i386__)
POINTWISE_BLOCK(block_avx512, v16, 16, 6, __attribute__((target("avx512f"))))
POINTWISE_BLOCK(wide_avx512, v16, 16, 12, __attribute__((target("avx512f"))))
POINTWISE_BLOCK(block_avx2, v8, 8, 6, __attribute__((target("avx2,fma"))))
#endif
POINTWISE_BLOCK(block_v4, v4, 4, 6, ) /* NEON on aarch64, SSE on x86 */

/* The kernel for tiles of 6 positions, and, where there are registers for 24 accumulators, one for
 * tiles of 12, which reads each weight vector half as often (YAMNet's 24 positions: 25 % faster
 * alone) but computes 12 for 6 or fewer. */
static void (*block)(const equivd_pointwise_job *, size_t, size_t);
static void (*wide)(const equivd_pointwise_job *, size_t, size_t);
static size_t width;
static pthread_once_t chosen = PTHREAD_ONCE_INIT;

static void choose_once(void) {
    block = block_v4, wide = NULL, width = 4;
#if defined(__x86_64__) || defined(__i386__)
    const char *isa = equivd_conv_isa();
    if (!strcmp(isa, "avx512")) block = block_avx512, wide = wide_avx512, width = 16;
    else if (!strcmp(isa, "avx2")) block = block_avx2, width = 8;
#endif
}

size_t equivd_pointwise_packed_count(size_t filters, size_t channels) {
    pthread_once(&chosen, choose_once);
    return (filters + 2 * width - 1) / (2 * width) * 2 * width * channels;
}

void equivd_pointwise_pack(const float *weights, size_t filters, size_t channels, ptrdiff_t filter_stride,
                           ptrdiff_t channel_stride, float *packed) {
    pthread_once(&chosen, choose_once);
    const size_t fb = 2 * width;
    for (size_t b = 0; b * fb < filters; b++)
        for (size_t c = 0; c < channels; c++)
            for (size_t r = 0; r < fb; r++) {
                const size_t f = b * fb + r;
                *packed++ = f < filters ? weights[(ptrdiff_t)f * filter_stride + (ptrdiff_t)c * channel_stride] : 0.0f;
            }
}

/* Filter blocks outside, position tiles inside: a block's weights (2 × VW × channels floats) are
 * read from memory once and again from cache for each further tile. */
void equivd_pointwise(const equivd_pointwise_job *job) {
    pthread_once(&chosen, choose_once);
    const int by_12 = wide && job->positions > 6;
    for (size_t b = 0; b * 2 * width < job->filters; b++)
        for (size_t p0 = 0; p0 < job->positions; p0 += by_12 ? 12 : 6) (by_12 ? wide : block)(job, b, p0);
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
                        if (job->bias) acc[k] += job->bias[c0 + k];                                            \
                        if (job->relu) acc[k] = RELU(acc[k]);                                                  \
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
 * channels innermost so that each multiply-add covers VW channels however small the plane. Each
 * position first lists its taps that fall inside the input; each vector of channels then sums
 * them in a register and is stored once. */
#define DEPTHWISE_NHWC(NAME, VEC, VW, ATTR)                                                                    \
    ATTR static void NAME(const equivd_depthwise_job *job, const float *xt, const float *wt, const float *bt,     \
                          float *yt, size_t C) {                                                               \
        const ptrdiff_t ih = (ptrdiff_t)job->input_height, iw = (ptrdiff_t)job->input_width;                   \
        const size_t kh = job->kernel_height, kw = job->kernel_width;                                          \
        ptrdiff_t from[kh * kw], with[kh * kw];                                                                \
        for (size_t oy = 0; oy < job->output_height; oy++)                                                     \
            for (size_t ox = 0; ox < job->output_width; ox++) {                                                \
                size_t n = 0;                                                                                  \
                for (size_t ky = 0; ky < kh; ky++) {                                                           \
                    ptrdiff_t iy = (ptrdiff_t)(oy * job->stride_y + ky * job->dilation_y) - (ptrdiff_t)job->pad_top; \
                    if (iy < 0 || iy >= ih) continue;                                                          \
                    for (size_t kx = 0; kx < kw; kx++) {                                                       \
                        ptrdiff_t ix = (ptrdiff_t)(ox * job->stride_x + kx * job->dilation_x) - (ptrdiff_t)job->pad_left; \
                        if (ix < 0 || ix >= iw) continue;                                                      \
                        from[n] = (iy * iw + ix) * (ptrdiff_t)C, with[n++] = (ptrdiff_t)((ky * kw + kx) * C);  \
                    }                                                                                          \
                }                                                                                              \
                float *out = yt + (oy * job->output_width + ox) * C;                                           \
                for (size_t c = 0; c < C; c += VW) {                                                           \
                    VEC acc = *(const VEC *)(bt + c);                                                          \
                    for (size_t t = 0; t < n; t++)                                                             \
                        acc += *(const VEC *)(wt + with[t] + c) * *(const VEC *)(xt + from[t] + c);            \
                    if (job->relu) acc = RELU(acc);                                                            \
                    *(VEC *)(out + c) = acc;                                                                   \
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
        const size_t planes = job->input_height * job->input_width + job->output_height * job->output_width + taps + 1;
        return padded_channels(job->channels) * planes;
    }
    const equivd_phases p = phases_of(job);
    return p.channels * p.stride_y * p.stride_x * p.phase_height * p.phase_width + width;
}

/* dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols, in tiles of 16 × 16 so that
 * both sides are read and written a cache line at a time (a plain loop strides one of them by a
 * whole plane: most of the depthwise layer's time); inside a tile, 4 × 4 blocks go through
 * registers (four vector loads, eight shuffles, four vector stores instead of 32 scalar moves). */
static void transpose(const float *src, size_t rows, size_t cols, size_t src_stride, float *dst, size_t dst_stride) {
    for (size_t i0 = 0; i0 < rows; i0 += 16)
        for (size_t j0 = 0; j0 < cols; j0 += 16) {
            const size_t i1 = i0 + 16 < rows ? i0 + 16 : rows, j1 = j0 + 16 < cols ? j0 + 16 : cols;
            const size_t i4 = i0 + (i1 - i0) / 4 * 4, j4 = j0 + (j1 - j0) / 4 * 4;
            for (size_t i = i0; i < i4; i += 4)
                for (size_t j = j0; j < j4; j += 4) {
                    const float *a = src + i * src_stride + j;
                    v4 r0 = *(const v4 *)a, r1 = *(const v4 *)(a + src_stride);
                    v4 r2 = *(const v4 *)(a + 2 * src_stride), r3 = *(const v4 *)(a + 3 * src_stride);
                    v4 t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5), t1 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7);
                    v4 t2 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5), t3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
                    float *d = dst + j * dst_stride + i;
                    *(v4 *)d = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
                    *(v4 *)(d + dst_stride) = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
                    *(v4 *)(d + 2 * dst_stride) = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
                    *(v4 *)(d + 3 * dst_stride) = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
                }
            /* The tile's ragged edges, one float at a time. */
            for (size_t j = j0; j < j1; j++)
                for (size_t i = j < j4 ? i4 : i0; i < i1; i++) dst[j * dst_stride + i] = src[i * src_stride + j];
        }
}

/* Transposed to channels last (channels padded with zeros to whole vectors), computed there, and
 * transposed back. */
static void depthwise_nhwc(const equivd_depthwise_job *job, float *scratch) {
    const size_t C = padded_channels(job->channels), channels = job->channels;
    const size_t in_plane = job->input_height * job->input_width, out_plane = job->output_height * job->output_width;
    const size_t taps = job->kernel_height * job->kernel_width;
    float *xt = scratch, *yt = xt + in_plane * C, *wt = yt + out_plane * C, *bt = wt + taps * C;
    transpose(job->input, channels, in_plane, in_plane, xt, C);
    transpose(job->weights, channels, taps, taps, wt, C);
    for (size_t c = 0; c < C; c++) bt[c] = job->bias && c < channels ? job->bias[c] : 0;
    for (size_t c = channels; c < C; c++) {
        for (size_t p = 0; p < in_plane; p++) xt[p * C + c] = 0;
        for (size_t t = 0; t < taps; t++) wt[t * C + c] = 0;
    }
#if defined(__x86_64__) || defined(__i386__)
    if (width == 16) depthwise_nhwc_avx512(job, xt, wt, bt, yt, C);
    else if (width == 8) depthwise_nhwc_avx2(job, xt, wt, bt, yt, C);
    else
#endif
        depthwise_nhwc_v4(job, xt, wt, bt, yt, C);
    transpose(yt, out_plane, channels, C, job->output, out_plane);
}

/* The channels split into their stride phases, then each computed there. */
static void depthwise_rows(const equivd_depthwise_job *job, float *scratch) {
    const equivd_phases p = phases_of(job);
    const size_t plane = p.phase_height * p.phase_width, block = p.stride_y * p.stride_x * plane;
    const size_t taps = job->kernel_height * job->kernel_width;
    ptrdiff_t offsets[taps];
    equivd_phases_offsets(&p, job->kernel_height, job->kernel_width, job->dilation_y, job->dilation_x, offsets);
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
