/*
 * The sinc resampler (Sources/CDirectConv/sinc.c) against the signal it must reconstruct: a sum
 * of sinusoids below the cutoff, sampled at the input rate, must come out as the same sinusoids
 * sampled at the output positions n / ratio (away from the block's ends, where the input stops);
 * a sinusoid above the cutoff must come out attenuated. Ratios from 0.5 to 2 (an octave each way,
 * as canonicalization uses), natively per ISA and under qemu-aarch64 (`make conv-c-test`).
 */
#include "CDirectConv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Frequencies as fractions of the input rate. */
static double signal(const double *f, int count, double t) {
    double sum = 0;
    for (int j = 0; j < count; j++) sum += sin(2 * M_PI * f[j] * t + j) / count;
    return sum;
}

/* Largest error (in band) or largest output (out of band) over outputs away from the ends. */
static double run(double ratio, const double *f, int count, int in_band) {
    const size_t in_count = 4000, out_count = (size_t)(in_count * ratio);
    float *in = malloc(in_count * sizeof *in), *out = malloc(out_count * sizeof *out);
    float *table = malloc(equivd_sinc_table_count(ratio) * sizeof *table);
    float *scratch = malloc(equivd_sinc_scratch(ratio, in_count) * sizeof *scratch);
    for (size_t i = 0; i < in_count; i++) in[i] = (float)signal(f, count, (double)i);
    equivd_sinc_table(ratio, table);
    equivd_sinc_resample(ratio, table, in, in_count, 0, out, out_count, scratch);
    double worst = 0;
    size_t edge = (size_t)(200 * (ratio > 1 ? ratio : 1));
    for (size_t n = edge; n + edge < out_count; n++) {
        double want = in_band ? signal(f, count, (double)n / ratio) : 0;
        double error = fabs(out[n] - want);
        if (error > worst) worst = error;
    }
    free(in), free(out), free(table), free(scratch);
    return worst;
}

int main(void) {
    const double ratios[] = {0.5, 0.7071, 0.9439, 1.0595, 1.4142, 2.0};
    int failed = 0, total = 0;
    for (size_t r = 0; r < sizeof ratios / sizeof *ratios; r++) {
        double ratio = ratios[r], nyquist = 0.5 * (ratio < 1 ? ratio : 1);
        /* In band: up to 75 % of the lower Nyquist frequency (the passband is 90 %). */
        const double band[] = {0.013, 0.21 * nyquist / 0.5, 0.75 * nyquist};
        double error = run(ratio, band, 3, 1);
        int ok = error < 1e-3;  /* -60 dB of a full-scale signal */
        failed += !ok, total++;
        printf("%s sinc ratio %.4f: in-band error %.2e\n", ok ? "ok  " : "FAIL", ratio, error);
        if (ratio < 0.75) {  /* downsampling: what lies above the new Nyquist frequency (and below the old) must go */
            const double above[] = {1.3 * nyquist};
            double leak = run(ratio, above, 1, 0);
            ok = leak < 1e-3;
            failed += !ok, total++;
            printf("%s sinc ratio %.4f: leak at 1.3x the new Nyquist %.2e\n", ok ? "ok  " : "FAIL", ratio, leak);
        }
    }
    printf("%d passed, %d failed\n", total - failed, failed);
    return failed != 0;
}
