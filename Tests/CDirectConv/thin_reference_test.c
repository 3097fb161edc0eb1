/*
 * The pointwise and depthwise kernels (Sources/CDirectConv/thin.c) against nested-loop
 * references, natively with each ISA (EQUIVD_CONV_ISA) and under qemu-aarch64 (`make conv-c-test`).
 * Pointwise shapes cover filter counts that do and do not fill a block of 2 vectors (at every
 * width) and position counts that do and do not fill a tile of 6; depthwise shapes cover
 * strides 1 and 2 (stride phases), asymmetric padding, dilation with and without a stride,
 * non-square kernels, and rows shorter (computed channels last) and longer than a vector (computed
 * by rows) for every vector width.
 *
 *   cc -O2 -I Sources/CDirectConv/include Sources/CDirectConv/conv.c Sources/CDirectConv/thin.c \
 *      Tests/CDirectConv/thin_reference_test.c -lpthread -lm
 */
#include "CDirectConv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static float uniform(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

static float *random_floats(size_t n, unsigned *state) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = uniform(state);
    return x;
}

/* Largest error relative to the sum of |terms| of equivd_pointwise on one shape, laid out as a
 * 1×1 Conv (weights [f][c], input [c][p], output [f][p]) or, `dense`, as a Gemm (A [p][c], B
 * [c][f] not transposed, Y [p][f]). */
static double pointwise(size_t filters, size_t channels, size_t positions, int dense, unsigned seed) {
    float *w = random_floats(filters * channels, &seed), *x = random_floats(channels * positions, &seed);
    float *y = malloc(filters * positions * sizeof *y);
    float *packed = malloc(equivd_pointwise_packed_count(filters, channels) * sizeof *packed);
    for (size_t i = 0; i < filters * positions; i++) y[i] = NAN;  /* every output must be written */
    const ptrdiff_t wf = dense ? 1 : (ptrdiff_t)channels, wc = dense ? (ptrdiff_t)filters : 1;
    const ptrdiff_t xc = dense ? 1 : (ptrdiff_t)positions, xp = dense ? (ptrdiff_t)channels : 1;
    const ptrdiff_t yf = dense ? 1 : (ptrdiff_t)positions, yp = dense ? (ptrdiff_t)filters : 1;
    equivd_pointwise_pack(w, filters, channels, wf, wc, packed);
    equivd_pointwise(&(equivd_pointwise_job){.packed = packed, .filters = filters, .channels = channels,
                                             .positions = positions, .input = x, .input_channel_stride = xc,
                                             .input_position_stride = xp, .output = y, .output_filter_stride = yf,
                                             .output_position_stride = yp});
    double worst = 0;
    for (size_t f = 0; f < filters; f++)
        for (size_t p = 0; p < positions; p++) {
            double sum = 0, magnitude = 0;
            for (size_t c = 0; c < channels; c++) {
                double term = (double)w[f * wf + c * wc] * x[c * xc + p * xp];
                sum += term, magnitude += fabs(term);
            }
            double got = y[f * yf + p * yp], error = isnan(got) ? INFINITY : fabs(got - sum) / (magnitude + 1e-30);
            if (error > worst) worst = error;
        }
    free(w), free(x), free(y), free(packed);
    return worst;
}

typedef struct {
    size_t channels, height, width, kh, kw, stride, dilation, pad_top, pad_left, pad_bottom, pad_right;
} depthwise_shape;

/* With `epilogue`, a random bias per channel and ReLU as well. */
static double depthwise(depthwise_shape s, int epilogue, unsigned seed) {
    size_t oh = (s.height + s.pad_top + s.pad_bottom - (s.kh - 1) * s.dilation - 1) / s.stride + 1;
    size_t ow = (s.width + s.pad_left + s.pad_right - (s.kw - 1) * s.dilation - 1) / s.stride + 1;
    float *x = random_floats(s.channels * s.height * s.width, &seed), *w = random_floats(s.channels * s.kh * s.kw, &seed);
    float *y = malloc(s.channels * oh * ow * sizeof *y), *bias = epilogue ? random_floats(s.channels, &seed) : NULL;
    for (size_t i = 0; i < s.channels * oh * ow; i++) y[i] = NAN;
    equivd_depthwise_job job = {
        .input = x, .channels = s.channels, .input_height = s.height, .input_width = s.width, .weights = w,
        .kernel_height = s.kh, .kernel_width = s.kw, .stride_y = s.stride, .stride_x = s.stride,
        .dilation_y = s.dilation, .dilation_x = s.dilation, .pad_top = s.pad_top, .pad_left = s.pad_left,
        .bias = bias, .relu = epilogue, .output = y, .output_height = oh, .output_width = ow};
    float *scratch = malloc(equivd_depthwise_scratch(&job) * sizeof *scratch);
    equivd_depthwise(&job, scratch);
    free(scratch);
    double worst = 0;
    for (size_t c = 0; c < s.channels; c++)
        for (size_t oy = 0; oy < oh; oy++)
            for (size_t ox = 0; ox < ow; ox++) {
                double sum = 0, magnitude = 0;
                for (size_t ky = 0; ky < s.kh; ky++)
                    for (size_t kx = 0; kx < s.kw; kx++) {
                        long iy = (long)(oy * s.stride + ky * s.dilation) - (long)s.pad_top;
                        long ix = (long)(ox * s.stride + kx * s.dilation) - (long)s.pad_left;
                        if (iy < 0 || ix < 0 || iy >= (long)s.height || ix >= (long)s.width) continue;
                        double term = (double)w[(c * s.kh + ky) * s.kw + kx] * x[(c * s.height + iy) * s.width + ix];
                        sum += term, magnitude += fabs(term);
                    }
                if (epilogue) sum = sum + bias[c] > 0 ? sum + bias[c] : 0, magnitude += fabs(bias[c]);
                double got = y[(c * oh + oy) * ow + ox];
                double error = isnan(got) ? INFINITY : fabs(got - sum) / (magnitude + 1e-30);
                if (error > worst) worst = error;
            }
    free(x), free(w), free(y), free(bias);
    return worst;
}

int main(void) {
    const size_t pointwise_shapes[][3] = {
        {1, 1, 1}, {4, 16, 4}, {5, 17, 7}, {8, 3, 2}, {64, 32, 96}, {1024, 1024, 6}, {7, 1000, 13}, {3, 64, 1},
        {32, 8, 12}, {33, 5, 13}, {16, 9, 6}, {512, 512, 24},
    };
    const depthwise_shape depthwise_shapes[] = {
        {3, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1},      /* MobileNet's 3x3, same padding */
        {4, 9, 7, 3, 3, 2, 1, 0, 0, 1, 1},      /* stride 2 with TensorFlow's bottom/right padding */
        {2, 10, 11, 3, 3, 2, 1, 1, 1, 1, 1},    /* stride 2, symmetric */
        {2, 12, 12, 3, 3, 1, 2, 2, 2, 2, 2},    /* dilated */
        {5, 6, 20, 1, 5, 1, 1, 0, 2, 0, 2},     /* 1x5 */
        {1, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1},      /* one pixel: only the centre tap lands */
        {3, 13, 17, 3, 5, 2, 2, 2, 1, 0, 3},    /* stride and dilation together, uneven padding */
        {4, 5, 40, 3, 3, 1, 1, 1, 1, 1, 1},     /* rows of several vectors and a part one */
        {6, 9, 41, 3, 5, 2, 2, 2, 1, 0, 3},     /* the same on stride phases, in rows of 18 */
        {3, 7, 40, 3, 1, 1, 1, 1, 0, 2, 0},     /* 3x1 padded above and below only: planes copied whole */
    };
    const double tolerance = 1e-5;  /* relative to the sum of |terms|: float32 accumulation */
    int failed = 0, total = 0;
    for (size_t i = 0; i < sizeof pointwise_shapes / sizeof *pointwise_shapes; i++) {
        const size_t *s = pointwise_shapes[i];
        for (int dense = 0; dense < 2; dense++) {
            double error = pointwise(s[0], s[1], s[2], dense, 99u + (unsigned)i);
            total++;
            failed += error > tolerance;
            printf("%s %s pointwise (%s) %zu filters x %zu channels x %zu positions: max relative error %.2e\n",
                   error <= tolerance ? "ok  " : "FAIL", equivd_conv_isa(), dense ? "Gemm" : "Conv", s[0], s[1], s[2], error);
        }
    }
    for (size_t i = 0; i < sizeof depthwise_shapes / sizeof *depthwise_shapes; i++)
        for (int epilogue = 0; epilogue < 2; epilogue++, total++) {
            depthwise_shape s = depthwise_shapes[i];
            double error = depthwise(s, epilogue, 7u + (unsigned)i);
            failed += error > tolerance;
            printf("%s %s depthwise %zu x %zux%zu, %zux%zu, stride %zu, dilation %zu%s: max relative error %.2e\n",
                   error <= tolerance ? "ok  " : "FAIL", equivd_conv_isa(), s.channels, s.height, s.width, s.kh, s.kw,
                   s.stride, s.dilation, epilogue ? ", bias and ReLU" : "", error);
        }
    printf("%d passed, %d failed\n", total - failed, failed);
    return failed != 0;
}
