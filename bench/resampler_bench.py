#!/usr/bin/env python3
"""libsamplerate (each converter) against libsoxr (each quality recipe), the C libraries
themselves through ctypes, on the two jobs equivd resamples for:

- file replay: a whole file at 44.1 or 48 kHz to the model rate, 16 kHz;
- canonicalization by resampling: one window's audio at 16 kHz by 2^(k/48) for a shift of k
  bins (4 bins a semitone), k = ±4, ±28, ±48.

Quality against an ideal band-limited reference: a linear sweep from 50 Hz to 80 % (then 90 %)
of the lower Nyquist frequency, whose exact value at every output instant is known in closed
form; the error is measured at the constant delay that fits best (a delay costs equivd
nothing). SNR in dB over the middle 80 % of
the output (the ends hold the filters' edge effects); a converter whose passband ends below the
sweep's top loses there, which is what the two columns tell apart. Aliasing: a sweep entirely between the output's
Nyquist frequency (+5 %) and the input's (−5 %), which an ideal converter removes completely;
the output's level relative to the input's, in dB (downsampling only). Speed: ns per input sample,
one core (this process pinned to CPU 0), median of 7 runs over 60 s of audio.

    make bench-resamplers      # or: .venv/bin/python bench/resampler_bench.py [--json out.json]
"""
import argparse
import ctypes
import json
import os
import platform
import statistics
import time

import numpy as np


class SRCData(ctypes.Structure):
    _fields_ = [("data_in", ctypes.POINTER(ctypes.c_float)), ("data_out", ctypes.POINTER(ctypes.c_float)),
                ("input_frames", ctypes.c_long), ("output_frames", ctypes.c_long),
                ("input_frames_used", ctypes.c_long), ("output_frames_gen", ctypes.c_long),
                ("end_of_input", ctypes.c_int), ("src_ratio", ctypes.c_double)]


class SoxrQualitySpec(ctypes.Structure):
    _fields_ = [("precision", ctypes.c_double), ("phase_response", ctypes.c_double), ("passband_end", ctypes.c_double),
                ("stopband_begin", ctypes.c_double), ("e", ctypes.c_void_p), ("flags", ctypes.c_ulong)]


SRC = ctypes.CDLL("libsamplerate.so.0")
SRC.src_simple.argtypes = [ctypes.POINTER(SRCData), ctypes.c_int, ctypes.c_int]
SRC.src_strerror.restype = ctypes.c_char_p
SOXR = ctypes.CDLL("libsoxr.so.0")
SOXR.soxr_quality_spec.restype = SoxrQualitySpec
SOXR.soxr_quality_spec.argtypes = [ctypes.c_ulong, ctypes.c_ulong]
SOXR.soxr_oneshot.restype = ctypes.c_char_p
SOXR.soxr_oneshot.argtypes = [ctypes.c_double, ctypes.c_double, ctypes.c_uint, ctypes.c_void_p, ctypes.c_size_t,
                              ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p, ctypes.c_size_t,
                              ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p, ctypes.POINTER(SoxrQualitySpec), ctypes.c_void_p]

# libsamplerate's converters (samplerate.h) and libsoxr's recipes (soxr.h).
SRC_CONVERTERS = {"src SINC_BEST": 0, "src SINC_MEDIUM": 1, "src SINC_FASTEST": 2, "src LINEAR": 4}
SOXR_RECIPES = {"soxr VHQ": 6, "soxr HQ": 4, "soxr MQ": 2, "soxr LQ": 1}


def libsamplerate(x, rate_in, rate_out, converter):
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.zeros(int(len(x) * rate_out / rate_in) + 64, dtype=np.float32)
    d = SRCData(x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                len(x), len(out), 0, 0, 1, rate_out / rate_in)
    err = SRC.src_simple(ctypes.byref(d), converter, 1)
    if err:
        raise RuntimeError(SRC.src_strerror(err).decode())
    return out[:d.output_frames_gen]


def libsoxr(x, rate_in, rate_out, recipe):
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.zeros(int(len(x) * rate_out / rate_in) + 64, dtype=np.float32)
    done = ctypes.c_size_t()
    spec = SOXR.soxr_quality_spec(recipe, 0)
    err = SOXR.soxr_oneshot(rate_in, rate_out, 1, x.ctypes.data, len(x), None, out.ctypes.data, len(out),
                            ctypes.byref(done), None, ctypes.byref(spec), None)
    if err:
        raise RuntimeError(err.decode())
    return out[:done.value]


def converters():
    for name, c in SRC_CONVERTERS.items():
        yield name, lambda x, a, b, c=c: libsamplerate(x, a, b, c)
    for name, r in SOXR_RECIPES.items():
        yield name, lambda x, a, b, r=r: libsoxr(x, a, b, r)


def sweep(t, f0, f1, seconds):
    """A linear sweep's value at times t (its phase in closed form)."""
    return np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds)))


def middle(n):
    return slice(n // 10, n - n // 10)


def snr_db(resample, rate_in, rate_out, top, seconds=2.0):
    from scipy.optimize import minimize_scalar
    f1 = top * min(rate_in, rate_out) / 2
    x = sweep(np.arange(int(seconds * rate_in)) / rate_in, 50, f1, seconds)
    y = resample(x, rate_in, rate_out).astype(np.float64)
    t = np.arange(len(y)) / rate_out
    m = middle(len(y))
    # A constant delay costs equivd nothing: the error is taken at the delay that fits best.
    error = lambda d: np.sum((y[m] - sweep(t[m] + d / rate_out, 50, f1, seconds)) ** 2)
    lag = min(range(-8, 9), key=error)
    fit = minimize_scalar(error, bounds=(lag - 1, lag + 1), method="bounded", options=dict(xatol=1e-6))
    return 10 * np.log10(np.sum(sweep(t[m] + fit.x / rate_out, 50, f1, seconds) ** 2) / max(fit.fun, 1e-30))


def alias_db(resample, rate_in, rate_out, seconds=2.0):
    f0, f1 = 1.05 * rate_out / 2, 0.95 * rate_in / 2
    x = sweep(np.arange(int(seconds * rate_in)) / rate_in, f0, f1, seconds)
    y = resample(x, rate_in, rate_out).astype(np.float64)
    m = middle(len(y))
    return 20 * np.log10(max(np.sqrt(np.mean(y[m] ** 2)), 1e-12) / np.sqrt(np.mean(x ** 2)))


def ns_per_sample(resample, rate_in, rate_out, seconds, repeats=7):
    x = np.random.default_rng(1).standard_normal(int(seconds * rate_in)).astype(np.float32) * 0.1
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        resample(x, rate_in, rate_out)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / len(x)


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    rows = []
    jobs = [("file 44.1 kHz → 16 kHz", 44100, 16000, 60.0), ("file 48 kHz → 16 kHz", 48000, 16000, 60.0)]
    jobs += [(f"window, shift {k:+d} bins (2^({k}/48))", 16000, 16000 * 2 ** (k / 48), 1.96) for k in (-48, -28, -4, 4, 28, 48)]
    print(f"CPU: {cpu_name()}; one core; numpy {np.__version__}")
    print(f"{'job':38} {'converter':16} {'SNR≤.8':>7} {'SNR≤.9':>7} {'alias dB':>9} {'ns/sample':>10}")
    for job, a, b, seconds in jobs:
        for name, resample in converters():
            row = dict(job=job, converter=name, snr80_db=snr_db(resample, a, b, 0.8), snr90_db=snr_db(resample, a, b, 0.9),
                       alias_db=alias_db(resample, a, b) if b < a * 0.95 else None,
                       ns_per_sample=ns_per_sample(resample, a, b, seconds, repeats=7 if seconds > 10 else 25))
            rows.append(row)
            alias = f"{row['alias_db']:9.1f}" if row["alias_db"] is not None else f"{'–':>9}"
            print(f"{job:38} {name:16} {row['snr80_db']:7.1f} {row['snr90_db']:7.1f} {alias} {row['ns_per_sample']:10.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu=cpu_name(), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
