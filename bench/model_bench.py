"""Batch-1 latency of the default bundle's models: equivd's runtime versus onnxruntime (one
intra-op thread) on the same .onnx files, interleaved in one run.

    make bench-model     # or: .venv/bin/python bench/model_bench.py --equivd .build/release/equivd

The models are Models/classifier.onnx (the frozen classifier, ~0.86 M parameters) and
Models/canonicalizer.onnx, both on one 1x1x168x100 spectrogram window. equivd picks its
convolution kernel for the CPU (EQUIVD_CONV_ISA=avx2 or =portable asks for a narrower one) and
OpenBLAS its own (OPENBLAS_CORETYPE when set); both names are printed.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import time

import numpy as np
import onnxruntime as ort

HERE = pathlib.Path(__file__).resolve().parent
MODELS = [HERE.parent / "Models/classifier.onnx", HERE.parent / "Models/canonicalizer.onnx"]
SHAPE = (1, 1, 168, 100)


def ort_latency(path, runs, warmup):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).uniform(-12, 0, SHAPE).astype(np.float32)}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def equivd_latency(equivd, path, runs, warmup):
    out = subprocess.run([equivd, "model", "bench", str(path), "--shape", "x=" + ",".join(map(str, SHAPE)),
                          "--runs", str(runs), "--warmup", str(warmup), "--threads", "1"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--equivd", default=str(HERE.parent / ".build/release/equivd"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    args = ap.parse_args()
    ours = {m: [] for m in MODELS}
    theirs = {m: [] for m in MODELS}
    for r in range(args.rounds):
        for m in MODELS:
            result = equivd_latency(args.equivd, m, args.runs, args.warmup)
            ours[m].append(result["median_ms"])
            theirs[m].append(ort_latency(m, args.runs, args.warmup))
            print(f"round {r + 1} {m.name}: equivd {ours[m][-1]:.3f} ms, onnxruntime {theirs[m][-1]:.3f} ms", flush=True)
    print(f"\nmedian of {args.rounds} rounds x {args.runs} runs, input {list(SHAPE)}; onnxruntime {ort.__version__} "
          f"(1 intra-op thread); equivd 1 thread, conv kernel {result['conv_kernel']}, "
          f"OpenBLAS kernels {result['blas_core']}\n")
    print("| model | equivd, ms | onnxruntime, ms | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for m in MODELS:
        a, b = statistics.median(ours[m]), statistics.median(theirs[m])
        print(f"| {m.name} | {a:.3f} | {b:.3f} | **{a / b:.2f}** |")


if __name__ == "__main__":
    main()
