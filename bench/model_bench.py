"""Batch-1 latency of a classifier-sized CNN: equivd's runtime versus onnxruntime (one intra-op
thread) on the same .onnx file, interleaved in one run.

    make bench-model     # or: .venv/bin/python bench/model_bench.py --equivd .build/release/equivd

Until Training/ provides the default classifier, the network is a stand-in of about 1M
parameters on a 1x1x168x100 spectrogram window (four Conv+BN+ReLU blocks, max-pooling, mean over
time, two linear layers), exported by torch.onnx.export. Needs Debian's python3-torch and
onnxruntime from pip (scripts/setup-train-env.sh makes .venv with both).
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import time

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent
SHAPE = (1, 1, 168, 100)


class StandInClassifier(nn.Module):
    def __init__(self, classes=5):
        super().__init__()

        def block(cin, cout, pool):
            layers = [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
            return layers + ([nn.MaxPool2d(2)] if pool else [])

        self.features = nn.Sequential(*block(1, 16, True), *block(16, 32, True), *block(32, 64, True),
                                      *block(64, 128, False))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128 * 21, 320), nn.ReLU(), nn.Linear(320, classes))

    def forward(self, x):
        return self.head(self.features(x).mean(dim=3))


def export(path):
    torch.manual_seed(0)
    model = StandInClassifier().eval()
    torch.onnx.export(model, torch.randn(*SHAPE), path, opset_version=13, input_names=["x"], output_names=["y"])
    params = sum(p.numel() for p in model.parameters())
    return params


def ort_latencies(path, runs, warmup):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, SHAPE).astype(np.float32)
    for _ in range(warmup):
        session.run(None, {"x": x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"x": x})
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def equivd_latency(equivd, path, runs, warmup):
    out = subprocess.run([equivd, "model", "bench", str(path), "--runs", str(runs), "--warmup", str(warmup),
                          "--threads", "1"], check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    return result["median_ms"], result["blas_core"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--equivd", default=str(HERE.parent / ".build/release/equivd"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    args = ap.parse_args()
    path = HERE / "data" / "standin_classifier.onnx"
    path.parent.mkdir(exist_ok=True)
    params = export(path)
    ours, theirs = [], []
    for r in range(args.rounds):
        latency, core = equivd_latency(args.equivd, path, args.runs, args.warmup)
        ours.append(latency)
        theirs.append(ort_latencies(path, args.runs, args.warmup))
        print(f"round {r + 1}: equivd {ours[-1]:.3f} ms, onnxruntime {theirs[-1]:.3f} ms", flush=True)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"\nstand-in classifier, {params} parameters, input {list(SHAPE)}; median of {args.rounds} rounds "
          f"x {args.runs} runs (onnxruntime {ort.__version__}, 1 intra-op thread; equivd 1 OpenBLAS thread, "
          f"OpenBLAS kernels: {core})\n")
    print("| runtime | batch-1 latency, ms |")
    print("| --- | ---: |")
    print(f"| equivd (Swift, OpenBLAS) | {a:.3f} |")
    print(f"| onnxruntime (CPU EP) | {b:.3f} |")
    print(f"\nratio equivd / onnxruntime = {a / b:.2f}")


if __name__ == "__main__":
    main()
