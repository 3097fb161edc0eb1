"""Batch-1 latency of frozen models: equivd's runtime versus onnxruntime (one intra-op thread) on
the same .onnx files and the same input, both sides pinned to one core and interleaved round by
round.

    make bench-model     # or: .venv/bin/python bench/model_bench.py --equivd .build/release/equivd

The models: the default bundle's classifier and canonicalizer on one 1x1x168x100 spectrogram
window; YAMNet (a pretrained AudioSet tagger nobody here trained: strided and depthwise
convolutions; scripts/fetch-yamnet.py) on one 1x1x96x64 log-mel patch; CREPE tiny and full (a
pretrained pitch tracker nobody here trained, exported by PyTorch: a 1-D network of long kernels,
the first strided; scripts/fetch-crepe.py) on one 1024-sample frame; Basic Pitch (a pretrained
note transcriber nobody here trained, exported by its authors with tf2onnx: a constant-Q front end
of strided 1 x 256 Conv layers, then a small 2-D CNN; scripts/fetch-basic-pitch.py) on 43 844
samples. Each side gets the same input, written once to a raw float32 file.

onnxruntime is timed per call through its Python binding. What the binding itself costs is
measured on an Identity model of the same input size, in the same run, and subtracted; it is
printed. equivd is timed inside its own process (`equivd model bench`). The CPU model, its
vector extensions, equivd's convolution kernel and OpenBLAS's are printed with the figures.
For the classifier a second, profiled run per round (`--profile`, which times each node and so is
kept out of the model's own figure) gives each big convolution's share of the peak.
"""

import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import tempfile
import time

import numpy as np
import onnx
import onnx.helper
import onnxruntime as ort

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
CLASSIFIER = ROOT / "Models/classifier.onnx"
MODELS = [  # file, input name, shape, value range of realistic inputs
    (CLASSIFIER, "x", (1, 1, 168, 100), (-12, 0)),
    (ROOT / "Models/canonicalizer.onnx", "x", (1, 1, 168, 100), (-12, 0)),
    (ROOT / "data/pretrained/yamnet.onnx", "audio", (1, 1, 96, 64), (-7, 2)),
    (ROOT / "data/pretrained/crepe-tiny.onnx", "frames", (1, 1024), (-2, 2)),
    (ROOT / "data/pretrained/crepe-full.onnx", "frames", (1, 1024), (-2, 2)),
    (ROOT / "data/pretrained/basic-pitch.onnx", "serving_default_input_2:0", (1, 43844, 1), (-0.5, 0.5)),
]


def cpu():
    """The CPU model and which of SSE4.2/AVX2/FMA/AVX-512F it has."""
    info = pathlib.Path("/proc/cpuinfo").read_text()
    model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "unknown")
    flags = set(next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), []))
    isa = [name for name, flag in (("SSE4.2", "sse4_2"), ("AVX2", "avx2"), ("FMA", "fma"), ("AVX-512F", "avx512f"))
           if flag in flags]
    return model, isa


def multiply_adds(path, name, shape):
    """Multiply-adds of one run of the model on `shape`, per node: Conv and Gemm/MatMul, which are
    nearly all of the work. The shapes come from running the model once in onnxruntime with those
    nodes' tensors made outputs: ONNX's shape inference cannot follow exporters' computed pads."""
    model = onnx.load(str(path))
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    wanted = {n.output[0] for n in nodes} | {n.input[1] for n in nodes if n.input[1] not in weights}
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=t) for t in sorted(wanted - known))
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = s.run(None, {name: np.zeros(shape, np.float32)})
    dims = {o.name: list(v.shape) for o, v in zip(s.get_outputs(), outputs)}
    per_node = {}
    for node in nodes:
        if node.op_type == "Conv":
            per_node[node.name] = int(np.prod(dims[node.output[0]])) * int(np.prod(weights[node.input[1]][1:]))
        else:
            b = weights.get(node.input[1]) or dims[node.input[1]]
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            per_node[node.name] = int(np.prod(dims[node.output[0]])) * (b[-1] if trans_b else b[-2])
    return per_node


def fma_peak(core, work):
    """G lane-FMAs per second of this core, per vector width (bench/fma_peak.c)."""
    binary = work / "fma_peak"
    subprocess.run(["cc", "-O2", "-o", str(binary), str(HERE / "fma_peak.c")], check=True)
    return json.loads(subprocess.run(["taskset", "-c", str(core), str(binary)], check=True, capture_output=True,
                                     text=True).stdout)


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_times(s, feed, runs, warmup):
    for _ in range(warmup):
        s.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        s.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def identity_model(path, name, shape):
    """A model that only copies its input: what the Python binding costs on a call of this size."""
    value = onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(shape))
    out = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(shape))
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", [name], ["y"])], "identity", [value], [out])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)]), str(path))


def equivd_bench(equivd, core, path, name, shape, input_file, runs, warmup, profile=False):
    """equivd's median (and more) as its JSON line; with `profile`, also ms per node by name."""
    out = subprocess.run(["taskset", "-c", str(core), equivd, "model", "bench", str(path),
                          "--shape", f"{name}=" + ",".join(map(str, shape)), "--input", f"{name}={input_file}",
                          "--runs", str(runs), "--warmup", str(warmup), "--threads", "1"] + (["--profile"] if profile else []),
                         check=True, capture_output=True, text=True).stdout.splitlines()
    nodes = {m[2]: float(m[1]) for m in (re.match(r"\s*([\d.]+) ms\s+[\d.]+%\s+node '(.+)' \(", line) for line in out[1:]) if m}
    return json.loads(out[0]), nodes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--equivd", default=str(ROOT / ".build/release/equivd"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)), help="the CPU both sides run on")
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.core})
    models = [m for m in MODELS if m[0].exists()]
    work = pathlib.Path(tempfile.mkdtemp())
    inputs, sessions, identities, feeds = {}, {}, {}, {}
    for path, name, shape, (low, high) in models:
        x = np.random.default_rng(0).uniform(low, high, shape).astype(np.float32)
        inputs[path] = work / f"{path.stem}.f32"
        x.astype("<f4").tofile(inputs[path])
        feeds[path] = {name: x}
        sessions[path] = session(path)
        identity_model(work / f"{path.stem}-identity.onnx", name, shape)
        identities[path] = session(work / f"{path.stem}-identity.onnx")
    ours = {m[0]: [] for m in models}
    theirs = {m[0]: [] for m in models}
    overhead = {m[0]: [] for m in models}
    result, per_node = {}, {}
    for r in range(args.rounds):
        for path, name, shape, _ in models:
            result, _ = equivd_bench(args.equivd, args.core, path, name, shape, inputs[path], args.runs, args.warmup)
            ours[path].append(result["median_ms"])
            if path == CLASSIFIER:
                for node, ms in equivd_bench(args.equivd, args.core, path, name, shape, inputs[path], args.runs,
                                             args.warmup, profile=True)[1].items():
                    per_node.setdefault(node, []).append(ms)
            binding = ort_times(identities[path], feeds[path], args.runs, args.warmup)
            overhead[path].append(binding)
            theirs[path].append(ort_times(sessions[path], feeds[path], args.runs, args.warmup) - binding)
            print(f"round {r + 1} {path.name}: equivd {ours[path][-1]:.3f} ms, onnxruntime {theirs[path][-1]:.3f} ms "
                  f"(+{binding * 1e3:.0f} us binding)", flush=True)
    model, isa = cpu()
    kernel = result.get("conv_kernel")
    peak = fma_peak(args.core, work).get(kernel)
    print(f"\n{model} ({', '.join(isa)}), core {args.core}; median of {args.rounds} rounds x {args.runs} runs; "
          f"onnxruntime {ort.__version__} (1 intra-op thread, binding cost subtracted); equivd 1 thread, "
          f"conv kernel {kernel}, OpenBLAS kernels {result.get('blas_core')}; "
          f"measured FMA peak of that width: {peak} G FMA/s (bench/fma_peak.c)\n")
    print("| model | input | M multiply-adds | equivd, ms | onnxruntime, ms | ratio | equivd, % of peak | onnxruntime, % of peak | binding, us |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for path, name, shape, _ in models:
        a, b = statistics.median(ours[path]), statistics.median(theirs[path])
        macs = sum(multiply_adds(path, name, shape).values())
        share = (lambda ms: f"{100 * macs / (ms * 1e-3) / (peak * 1e9):.0f}") if peak else (lambda ms: "")
        print(f"| {path.name} | {'x'.join(map(str, shape))} | {macs / 1e6:.1f} | {a:.3f} | {b:.3f} | **{a / b:.2f}** | "
              f"{share(a)} | {share(b)} | {statistics.median(overhead[path]) * 1e3:.0f} |")
    if per_node and peak:
        name, shape = next((m[1], m[2]) for m in models if m[0] == CLASSIFIER)
        macs = multiply_adds(CLASSIFIER, name, shape)
        big = sorted((n for n in macs if macs[n] > 0.1 * sum(macs.values())), key=lambda n: -macs[n])
        print(f"\nThe classifier's big convolutions in equivd (`--profile`, median over rounds), share of the peak:\n")
        print("| node | M multiply-adds | ms | % of peak |\n| --- | ---: | ---: | ---: |")
        for n in big:
            ms = statistics.median(per_node[n])
            print(f"| {n} | {macs[n] / 1e6:.1f} | {ms:.3f} | {100 * macs[n] / (ms * 1e-3) / (peak * 1e9):.0f} |")
        ms = sum(statistics.median(per_node[n]) for n in big)
        print(f"| together | {sum(macs[n] for n in big) / 1e6:.1f} | {ms:.3f} | "
              f"{100 * sum(macs[n] for n in big) / (ms * 1e-3) / (peak * 1e9):.0f} |")


if __name__ == "__main__":
    main()
