"""Replay throughput of the whole path, file → events, on one core: `equivd replay`
versus a Python peer pipeline doing the same work — the numpy/scipy front end of
bench/frontend_reference.py, onnxruntime (1 thread) for both models, and the same
canonicalize → classify → top-K / abstain / idle decisions — on the same files and bundle.

Both run pinned to one core (taskset), whole processes timed (loading and planning included),
interleaved, several times; medians and their ratio are printed. The peer's labels are compared
with equivd's window by window as a check that both did the same work.
Run: `make bench-replay` (or `.venv/bin/python bench/replay_bench.py --equivd .build/release/equivd`).
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from frontend_reference import FrontEnd  # noqa: E402


def read_mono(path, sample_rate):
    """The file as mono float64 at `sample_rate`: other rates through scipy's polyphase
    resampler (what the peer does where equivd uses libsoxr)."""
    from math import gcd
    import scipy.io.wavfile
    import scipy.signal
    rate, data = scipy.io.wavfile.read(path)
    scale = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}.get(data.dtype, 1.0)
    data = np.asarray(data, dtype=np.float64) / scale
    data = data.mean(axis=1) if data.ndim == 2 else data
    if rate != sample_rate:
        g = gcd(rate, sample_rate)
        data = scipy.signal.resample_poly(data, sample_rate // g, rate // g)
    return data


def peer(files, bundle):
    """The Python pipeline; prints one label per window (or '-') and returns the labels."""
    import onnxruntime as ort
    manifest = json.loads((bundle / "bundle.json").read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    canon = ort.InferenceSession(str(bundle / "canonicalizer.onnx"), options, providers=["CPUExecutionProvider"])
    classify = ort.InferenceSession(str(bundle / "classifier.onnx"), options, providers=["CPUExecutionProvider"])
    classes, K = manifest["classes"], manifest["shift"]["range_bins"]
    t = manifest["thresholds"]
    top_k, canon_min, class_min = t["top_k"], t["canonicalizer_min_p"], t["classifier_min_p"]
    front = FrontEnd(**manifest["front_end"])

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def translate(w, k):
        """T_k with edge replication: content moves up by k bins."""
        idx = np.clip(np.arange(w.shape[0]) - k, 0, w.shape[0] - 1)
        return w[idx]

    labels = []
    for path in files:
        for w in front.windows(read_mono(path, manifest["front_end"]["sample_rate"])).astype(np.float32):
            if w.mean() < -11.5:
                labels.append("-")
                continue
            p = softmax(canon.run(None, {"x": w[None, None]})[0][0])
            order = np.argsort(-p)
            if p[order[0]] >= canon_min:
                batch, weights = translate(w, -(order[0] - K))[None, None], np.ones(1)
            else:
                picks = order[:top_k]
                batch = np.stack([translate(w, -(i - K)) for i in picks])[:, None]
                weights = p[picks] / p[picks].sum()
            probs = (weights[:, None] * softmax(classify.run(None, {"x": batch})[0])).sum(0)
            labels.append(classes[probs.argmax()] if probs.max() >= class_min else "-")
    return labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--equivd", default=str(ROOT / ".build/release/equivd"))
    ap.add_argument("--bundle", default=str(ROOT / "Models"))
    ap.add_argument("--repeat", type=int, default=6, help="times the sample set is listed (audio per run)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    if args.peer:
        print("\n".join(peer(args.files, pathlib.Path(args.bundle))))
        return

    # Every bundled sample, the 44.1-kHz stereo recording included (both sides resample it).
    files = [str(p) for p in sorted((ROOT / "Samples").glob("*.wav"))] * args.repeat
    audio = sum(len(read_mono(f, 16000)) for f in files) / 16000
    report = pathlib.Path(tempfile.mkdtemp()) / "report.json"
    swift_cmd = ["taskset", "-c", "0", args.equivd, "replay", *files, "--bundle", args.bundle, "--json"]
    peer_cmd = ["taskset", "-c", "0", sys.executable, __file__, "--peer", "--bundle", args.bundle, *files]
    times = {"equivd": [], "peer": []}
    outputs = {}
    for _ in range(args.runs):
        for name, cmd in (("equivd", swift_cmd), ("peer", peer_cmd)):
            start = time.perf_counter()
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            times[name].append(time.perf_counter() - start)
            outputs[name] = out
    swift_labels = [json.loads(l)["label"] or "-" for l in outputs["equivd"].splitlines()]
    peer_labels = outputs["peer"].split()
    agree = sum(a == b for a, b in zip(swift_labels, peer_labels)) / max(len(swift_labels), 1)
    s, p = statistics.median(times["equivd"]), statistics.median(times["peer"])
    print(f"{len(files)} files, {audio:.0f} s of audio, {len(swift_labels)} windows; one core (taskset -c 0); "
          f"median of {args.runs} interleaved runs, whole processes")
    print(f"  equivd replay: {s:.2f} s = {audio / s:.0f} audio-s/s")
    print(f"  Python peer (numpy/scipy + onnxruntime 1 thread): {p:.2f} s = {audio / p:.0f} audio-s/s")
    print(f"  ratio: equivd {p / s:.2f}x the peer's throughput")
    print(f"  labels agree on {100 * agree:.1f} % of windows ({len(peer_labels)} peer windows)")


if __name__ == "__main__":
    main()
