/*
 * The sinc resampler alone (Sources/CDirectConv/sinc.c) on what canonicalizing one window for
 * YAMNet asks of it: 15 600 output samples (a 96-frame log-mel patch) at the ratios that undo a
 * shift of −24, −7, +5 and +24 bins (2 a semitone). Median and best of 31 calls, in ms.
 *
 *   make bench-resample   # every ISA the CPU has, pinned to one core, then the in-situ figures
 */
#include "CDirectConv.h"
#include "timing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    enum { RUNS = 31, OUTPUTS = 15600 };
    const int shifts[] = {-24, -7, 5, 24};
    for (size_t s = 0; s < sizeof shifts / sizeof *shifts; s++) {
        const double ratio = pow(2.0, shifts[s] / 24.0);
        const size_t inputs = (size_t)(OUTPUTS / ratio) + 2 * equivd_sinc_taps(ratio);
        float *table = malloc(equivd_sinc_table_count(ratio) * sizeof(float));
        float *input = malloc(inputs * sizeof(float)), *output = malloc(OUTPUTS * sizeof(float));
        float *scratch = malloc(equivd_sinc_scratch(ratio, inputs) * sizeof(float));
        equivd_sinc_table(ratio, table);
        for (size_t i = 0; i < inputs; i++) input[i] = sinf(0.01f * (float)i) + 0.3f * cosf(0.37f * (float)i);
        double times[RUNS];
        for (int r = 0; r < RUNS; r++) {
            double started = now();
            equivd_sinc_resample(ratio, table, input, inputs, equivd_sinc_half_width(ratio), output, OUTPUTS, scratch);
            times[r] = now() - started;
        }
        qsort(times, RUNS, sizeof *times, by_value);
        printf("| %s | %+d | %zu | %.3f | %.3f |\n", equivd_conv_isa(), shifts[s], equivd_sinc_taps(ratio),
               1e3 * times[RUNS / 2], 1e3 * times[0]);
        free(table), free(input), free(output), free(scratch);
    }
    return 0;
}
