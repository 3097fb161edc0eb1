/*
 * The direct convolution kernels against a nested-loop reference, in C alone, so that they are
 * checked on every architecture they build for: natively (each kernel the CPU runs, chosen with
 * EQUIVD_CONV_ISA) and cross-compiled for aarch64 under qemu-user (`make conv-c-test`).
 *
 * A job is laid out as EquivModel's planPaddedConv lays it out: zero-padded input planes, one
 * offset per tap, a lanes entry per 16 grid positions, packed weights. Shapes cover single and
 * many channels, filter counts that do not fill a block of 8, 1x1, 3x3, 5x1 and dilated taps,
 * outputs narrower than a step, with and without bias and ReLU.
 *
 *   cc -O2 -I Sources/CDirectConv/include Sources/CDirectConv/conv.c Tests/CDirectConv/conv_reference_test.c -lpthread -lm
 */
#include "CDirectConv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t channels, filters, height, width, kh, kw, dilation, pad;
    int bias, relu;
} shape;

static float uniform(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

/* Runs one shape through equivd_conv and the reference; returns the largest relative error. */
static double check(shape s, unsigned seed) {
    const size_t pw = s.width + 2 * s.pad, ph = s.height + 2 * s.pad;
    const size_t ow = pw - (s.kw - 1) * s.dilation, oh = ph - (s.kh - 1) * s.dilation;
    const size_t taps = s.kh * s.kw, step = equivd_conv_step();
    const size_t positions = oh * pw, computed = (positions + step - 1) / step * step;
    const size_t plane = ph * pw;
    ptrdiff_t *offsets = malloc(taps * sizeof *offsets);
    for (size_t ky = 0; ky < s.kh; ky++)
        for (size_t kx = 0; kx < s.kw; kx++) offsets[ky * s.kw + kx] = (ptrdiff_t)((ky * pw + kx) * s.dilation);
    /* The kernel reads whole steps past the last plane, beyond the largest offset. */
    const size_t input_count = s.channels * plane + computed + (size_t)offsets[taps - 1];
    float *input = calloc(input_count, sizeof *input);
    float *weights = malloc(s.filters * s.channels * taps * sizeof *weights);
    float *bias = malloc(s.filters * sizeof *bias);
    unsigned state = seed;
    for (size_t c = 0; c < s.channels; c++)
        for (size_t y = 0; y < s.height; y++)
            for (size_t x = 0; x < s.width; x++) input[c * plane + (y + s.pad) * pw + x + s.pad] = uniform(&state);
    for (size_t i = 0; i < s.filters * s.channels * taps; i++) weights[i] = uniform(&state);
    for (size_t f = 0; f < s.filters; f++) bias[f] = uniform(&state);

    size_t lane_count = computed / 16 + 1;
    equivd_conv_lanes *lanes = calloc(lane_count, sizeof *lanes);
    for (size_t g = 0; g < lane_count; g++) {
        size_t start = g * 16;
        lanes[g].first = (uint32_t)(start / pw * ow + (start % pw < ow ? start % pw : ow));
        for (size_t i = 0; i < 16; i++)
            if (start + i < positions && (start + i) % pw < ow) lanes[g].mask |= 1u << i;
    }
    float *packed = malloc(equivd_conv_packed_count(s.filters, s.channels, taps) * sizeof *packed);
    equivd_conv_pack(weights, s.filters, s.channels, taps, packed);
    float *output = malloc(s.filters * oh * ow * sizeof *output);
    for (size_t i = 0; i < s.filters * oh * ow; i++) output[i] = NAN;  /* every output must be written */

    equivd_conv_job job = {
        .input = input, .channels = s.channels, .plane = plane, .offsets = offsets, .taps = taps,
        .packed = packed, .filters = s.filters, .bias = s.bias ? bias : NULL, .relu = s.relu,
        .output = output, .output_plane = oh * ow, .lanes = lanes, .positions = positions};
    equivd_conv(&job);

    double worst = 0;
    for (size_t f = 0; f < s.filters; f++)
        for (size_t y = 0; y < oh; y++)
            for (size_t x = 0; x < ow; x++) {
                double sum = s.bias ? bias[f] : 0, magnitude = fabs(sum);
                for (size_t c = 0; c < s.channels; c++)
                    for (size_t t = 0; t < taps; t++) {
                        double term = (double)weights[(f * s.channels + c) * taps + t] *
                                      input[c * plane + y * pw + x + (size_t)offsets[t]];
                        sum += term;
                        magnitude += fabs(term);
                    }
                if (s.relu && sum < 0) sum = 0;
                double got = output[f * oh * ow + y * ow + x];
                double error = isnan(got) ? INFINITY : fabs(got - sum) / (magnitude + 1e-30);
                if (error > worst) worst = error;
            }
    free(offsets), free(input), free(weights), free(bias), free(lanes), free(packed), free(output);
    return worst;
}

int main(void) {
    const shape shapes[] = {
        {1, 8, 20, 37, 3, 3, 1, 1, 1, 1},    /* one channel, one full block */
        {3, 5, 9, 9, 1, 1, 1, 0, 0, 0},      /* 1x1, a partial block */
        {16, 12, 11, 23, 3, 3, 1, 1, 1, 0},  /* many channels, a block and a half */
        {4, 9, 14, 30, 3, 3, 2, 2, 1, 1},    /* dilated */
        {2, 8, 7, 5, 5, 1, 1, 2, 0, 1},      /* 5x1, output narrower than a step */
        {8, 16, 24, 100, 3, 3, 1, 1, 1, 1},  /* a spectrogram-shaped layer */
        {1, 1, 1, 1, 1, 1, 1, 0, 0, 0},      /* one position, one filter */
    };
    const double tolerance = 1e-5;  /* relative to the sum of |terms|: float32 accumulation */
    int failed = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        double error = check(shapes[i], 1234567u + (unsigned)i);
        int ok = error <= tolerance;
        failed += !ok;
        printf("%s %s shape %zu: %zux%zu->%zu, %zux%zu, dilation %zu, pad %zu: max relative error %.2e\n",
               ok ? "ok  " : "FAIL", equivd_conv_isa(), i, shapes[i].channels, shapes[i].height, shapes[i].filters,
               shapes[i].kh, shapes[i].kw, shapes[i].dilation, shapes[i].pad, error);
    }
    printf("%d passed, %d failed\n", (int)(sizeof shapes / sizeof *shapes) - failed, failed);
    return failed != 0;
}
