/*
 * The direct convolution kernel alone (Sources/CDirectConv/conv.c) on the bundled classifier's
 * three big convolutions (3×3, pad 1, ReLU): median and best of 2000 calls, in G multiply-adds
 * per second of valid outputs. Without the model around it (padding, pooling, other nodes) this
 * is what the kernel's register blocking reaches; `make bench-conv` sets it beside the FMA peak.
 *
 *   make bench-conv      # every ISA the CPU has, pinned to one core, with bench/fma_peak.c
 */
#include "CDirectConv.h"
#include "timing.h"

#include <stdio.h>
#include <stdlib.h>

/* One C-channel, H×W input into F filters, laid out as EquivModel's Conv lays it out. */
static void bench(size_t channels, size_t filters, size_t height, size_t width) {
    enum { RUNS = 2000 };
    const size_t pw = width + 2, plane = pw * (height + 2), step = equivd_conv_step();
    const size_t positions = height * pw, computed = (positions + step - 1) / step * step;
    const size_t floats = channels * plane + computed + 2 * pw + 2;
    float *input = calloc(floats, sizeof *input), *weights = malloc(filters * channels * 9 * sizeof *weights);
    float *packed = malloc(equivd_conv_packed_count(filters, channels, 9) * sizeof *packed);
    float *output = malloc(filters * height * width * sizeof *output);
    equivd_conv_lanes *lanes = calloc(computed / 16 + 1, sizeof *lanes);
    srand(1);
    for (size_t i = 0; i < channels * plane; i++) input[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (size_t i = 0; i < filters * channels * 9; i++) weights[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    equivd_conv_pack(weights, filters, channels, 9, packed);
    ptrdiff_t offsets[9];
    for (int t = 0; t < 9; t++) offsets[t] = (ptrdiff_t)(t / 3 * pw + t % 3);
    uint32_t next = 0;
    for (size_t g = 0; g <= computed / 16; g++) {
        lanes[g].first = next;
        for (size_t i = 0; i < 16; i++) {
            size_t p = 16 * g + i;
            if (p < positions && p % pw < width) lanes[g].mask |= 1u << i, next++;
        }
    }
    equivd_conv_job job = {input, channels, plane, offsets, 9, packed, filters, NULL, 1, output, height * width, lanes, positions};
    double times[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double start = now();
        equivd_conv(&job);
        times[r] = now() - start;
    }
    qsort(times, RUNS, sizeof *times, by_value);
    const double macs = (double)filters * channels * 9 * height * width;
    printf("| %s | %zu→%zu, %zu×%zu | %.1f | %.1f | %.1f |\n", equivd_conv_isa(), channels, filters, height, width,
           macs / 1e6, macs / times[RUNS / 2] / 1e9, macs / times[0] / 1e9);
    free(input), free(weights), free(packed), free(output), free(lanes);
}

int main(void) {
    bench(16, 32, 84, 50);
    bench(32, 64, 42, 25);
    bench(64, 96, 21, 12);
    return 0;
}
