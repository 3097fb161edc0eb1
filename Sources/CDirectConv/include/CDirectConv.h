#ifndef EQUIVD_CDIRECTCONV_H
#define EQUIVD_CDIRECTCONV_H

#include <stddef.h>
#include <stdint.h>

/*
 * Stride-1 convolution computed directly on zero-padded input planes, for EquivModel's Conv.
 *
 * The kernel computes every position p of the padded grid (row y, column x: p = y * padded_width
 * + x) for every filter f:
 *   sum over c, t of w[f][c][t] * input[c * plane + p + offsets[t]]
 * with offsets[t] = ky * dilation_y * padded_width + kx * dilation_x, adds bias[f], applies ReLU
 * if asked, and stores only the valid positions (x < output width, p < positions) to
 * output[f * output_plane + …] in order, which is the NCHW output. It works in whole steps of
 * equivd_conv_step() positions, so the caller leaves that many readable floats after the last
 * plane, beyond the largest offset.
 *
 * Weights are packed once, at load, in blocks of R filters, R the chosen kernel's (8; 6 for
 * AVX2): block b holds [c][t][r] for filters b * R + r (zero where that filter does not exist).
 * The kernel is picked once per process for the CPU: AVX-512 or AVX2 + FMA on x86, NEON on
 * aarch64, portable C anywhere.
 */

/* Which of 16 consecutive grid positions are outputs (bit i for position 16g + i), and the output
 * index of the first of them: the valid positions of a group land on consecutive indices. */
typedef struct {
    uint32_t mask;
    uint32_t first;
} equivd_conv_lanes;

typedef struct {
    const float *input;               /* the padded planes */
    size_t channels, plane;           /* plane: floats from one channel to the next (its padded plane, or its stride phases: equivd_phases) */
    const ptrdiff_t *offsets;         /* one per tap */
    size_t taps;
    const float *packed;              /* from equivd_conv_pack */
    size_t filters;
    const float *bias;                /* one per filter, or NULL */
    int relu;
    float *output;                    /* filter f's plane starts at output + f * output_plane */
    size_t output_plane;
    const equivd_conv_lanes *lanes;   /* one per 16 grid positions, rounded up to whole steps */
    size_t positions;                 /* grid positions to compute: output height × padded width */
} equivd_conv_job;

/* Positions per step of the kernel the CPU runs. */
size_t equivd_conv_step(void);
/* The kernel in use: "avx512", "avx2", "neon" or "portable". */
const char *equivd_conv_isa(void);

/* Floats that equivd_conv_pack writes for `filters` filters of `channels` × `taps` weights. */
size_t equivd_conv_packed_count(size_t filters, size_t channels, size_t taps);
/* Packs weights laid out [filters][channels][taps] (ONNX's W for one group). */
void equivd_conv_pack(const float *weights, size_t filters, size_t channels, size_t taps, float *packed);

void equivd_conv(const equivd_conv_job *job);

/*
 * A product with few positions (thin.c), for a 1×1 Conv over few positions (the late layers of a
 * MobileNet, where sgemm with a small N spends its time packing) and a Gemm or MatMul of few rows
 * (dense layers at batch 1, where OpenBLAS's sgemv may run generic kernels):
 *   output(f, p) = sum over c of weights(f, c) * input(c, p)
 * for f < filters, c < channels, p < positions; every operand is read and written through its own
 * strides. The weights are packed once, at load, by equivd_pointwise_pack
 * (equivd_pointwise_packed_count floats), from weights(f, c) = weights[f * filter_stride +
 * c * channel_stride].
 */
typedef struct {
    const float *packed;
    size_t filters, channels, positions;
    const float *input;
    ptrdiff_t input_channel_stride, input_position_stride;
    float *output;
    ptrdiff_t output_filter_stride, output_position_stride;
} equivd_pointwise_job;

size_t equivd_pointwise_packed_count(size_t filters, size_t channels);
void equivd_pointwise_pack(const float *weights, size_t filters, size_t channels, ptrdiff_t filter_stride,
                           ptrdiff_t channel_stride, float *packed);
void equivd_pointwise(const equivd_pointwise_job *job);

/* Depthwise convolution (group = channels = filters), any kernel, stride, dilation and zero
 * padding, one image in NCHW; adds bias[c] and applies ReLU when asked (thin.c). */
typedef struct {
    const float *input;
    size_t channels, input_height, input_width;
    const float *weights;             /* [channels][kernel_height][kernel_width] */
    size_t kernel_height, kernel_width, stride_y, stride_x, dilation_y, dilation_x, pad_top, pad_left;
    const float *bias;                /* one per channel, or NULL */
    int relu;
    float *output;
    size_t output_height, output_width;
} equivd_depthwise_job;

/* Floats of scratch equivd_depthwise needs for `job`. */
size_t equivd_depthwise_scratch(const equivd_depthwise_job *job);
void equivd_depthwise(const equivd_depthwise_job *job, float *scratch);

/*
 * The stride phases of zero-padded input planes, which turn a strided convolution into one the
 * kernels above move through one position at a time (conv.c). Phase (ry, rx) of a channel holds
 * the padded plane's rows ry, ry + stride_y, … and columns rx, rx + stride_x, …:
 * phase_height × phase_width floats, zero where they fall in the padding or past it. A channel's
 * stride_y × stride_x phases follow one another, row phase major, and the channels follow one
 * another. With unit strides this is the zero-padded plane itself. A tap at (y, x) of the padded
 * plane, relative to an output's first, is then read at
 *   ((y mod stride_y) · stride_x + x mod stride_x) · phase plane + (y div stride_y) · phase_width + x div stride_x
 * from the output's position on the phase grid.
 */
typedef struct {
    size_t channels, input_height, input_width, stride_y, stride_x, pad_top, pad_left, phase_height, phase_width;
} equivd_phases;

void equivd_phases_fill(const equivd_phases *phases, const float *input, float *output);
/* The offset of each tap of a kernel_height × kernel_width kernel with these dilations, row-major:
 * the formula above for (ky · dilation_y, kx · dilation_x). */
void equivd_phases_offsets(const equivd_phases *phases, size_t kernel_height, size_t kernel_width, size_t dilation_y,
                           size_t dilation_x, ptrdiff_t *offsets);

/*
 * One block resampled by `ratio` output samples per input sample with a Kaiser-windowed sinc
 * (sinc.c): output n is the band-limited input at position start + n / ratio (inputs outside the
 * block read as zero), the cutoff 0.9 of the lower Nyquist frequency. `table` holds
 * equivd_sinc_table_count(ratio) floats filled once by equivd_sinc_table; `scratch` holds
 * equivd_sinc_scratch(ratio, input_count).
 */
size_t equivd_sinc_taps(double ratio);
size_t equivd_sinc_table_count(double ratio);
void equivd_sinc_table(double ratio, float *table);
size_t equivd_sinc_scratch(double ratio, size_t input_count);
size_t equivd_sinc_half_width(double ratio);
void equivd_sinc_resample(double ratio, const float *table, const float *input, size_t input_count, double start,
                          float *output, size_t output_count, float *scratch);

#endif
