#ifndef EQUIVD_CDIRECTCONV_H
#define EQUIVD_CDIRECTCONV_H

#include <stddef.h>

/*
 * Stride-1 convolution computed directly on zero-padded input planes, for EquivModel's Conv.
 *
 * Every output position p on the padded grid (row y, column x: p = y * padded_width + x) is
 *   out[f * out_stride + p] = sum over c, t of w[f][c][t] * in[c * plane + p + offsets[t]]
 * where offsets[t] = ky * dilation_y * padded_width + kx * dilation_x. Columns x >= the output
 * width are computed too and ignored by the caller; so is everything past `positions`, which the
 * kernel rounds up to whole steps of equivd_conv_step() positions: the caller leaves that much
 * readable input after the last plane and writable output after each filter's row.
 *
 * Weights are packed once, at load, in blocks of equivd_conv_filters_per_block() filters:
 * block b holds [c][t][r] for filters b * R + r (zero where that filter does not exist).
 * The kernel is picked once per process for the CPU: AVX-512, AVX2 + FMA, or portable C.
 */

/* Filters per packed block (R) and positions per step of the kernel the CPU runs. */
size_t equivd_conv_filters_per_block(void);
size_t equivd_conv_step(void);
/* The kernel in use: "avx512", "avx2" or "portable". */
const char *equivd_conv_isa(void);

/* Floats that equivd_conv_pack writes for `filters` filters of `channels` × `taps` weights. */
size_t equivd_conv_packed_count(size_t filters, size_t channels, size_t taps);
/* Packs weights laid out [filters][channels][taps] (ONNX's W for one group). */
void equivd_conv_pack(const float *weights, size_t filters, size_t channels, size_t taps, float *packed);

void equivd_conv_padded(const float *input, size_t channels, size_t plane, const ptrdiff_t *offsets, size_t taps,
                        const float *packed, size_t filters, float *output, size_t out_stride, size_t positions);

#endif
