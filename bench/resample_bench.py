"""What canonicalization by resampling costs a log-mel classifier, beside one call of that classifier.

  .venv/bin/python bench/resample_bench.py [--bundle B] [--equivd .build/release/equivd] [--rounds 5]

`equivd features --bundle B --shift-bins K` computes, for every window of a 10-minute file, exactly what
the live path hands the classifier: the window's audio resampled to undo K bins (CDirectConv's sinc),
then the model's log-mel patch. K = 0 is the same work without the resampler (ratio 1 passes
through), so (time at K − time at 0) / windows is the resampler's share of a window. The
classifier call is `equivd model bench` on the bundle's classifier. Both pinned to one core,
rounds interleaved, medians quoted. Without --bundle, a YAMNet bundle is made in a temporary
folder (data/pretrained/yamnet.onnx, the default bundle's canonicalizer)."""

import argparse
import hashlib
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import tempfile
import time

import numpy as np
import scipy.io.wavfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
YAMNET_INPUT = {"kind": "log_mel", "sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 64,
                "f_min": 125.0, "f_max": 7500.0, "mel_scale": "htk", "norm": "none", "power": 1.0, "center": False,
                "log_offset": 0.001, "log": "ln", "frames": 96, "layout": "frames_mels", "shape": [1, 1, 96, 64]}


def yamnet_bundle(folder):
    shutil.copy(ROOT / "Models/canonicalizer.onnx", folder)
    shutil.copy(ROOT / "data/pretrained/yamnet.onnx", folder / "classifier.onnx")
    bundle = json.loads((ROOT / "Models/bundle.json").read_text())
    bundle["classes"] = ["speech", "music"]
    bundle["models"]["classifier"] = {
        "file": "classifier.onnx", "sha256": hashlib.sha256((folder / "classifier.onnx").read_bytes()).hexdigest(),
        "input": YAMNET_INPUT, "output": {"activation": "sigmoid", "classes": {"speech": [0], "music": [132]}}}
    (folder / "bundle.json").write_text(json.dumps(bundle))
    return folder


def timed(cmd, core):
    started = time.perf_counter()
    subprocess.run(["taskset", "-c", str(core), *cmd], check=True, capture_output=True)
    return time.perf_counter() - started


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle")
    ap.add_argument("--equivd", default=str(ROOT / ".build/release/equivd"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--shifts", default="-24,-7,5,24", help="bins; 2 a semitone")
    ap.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)))
    ap.add_argument("--seconds", type=int, default=600,
                    help="length of the noise file: long enough that the resampler's share stands above a run's noise")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        bundle = pathlib.Path(a.bundle) if a.bundle else yamnet_bundle(tmp)
        rng = np.random.default_rng(0)
        audio = (0.1 * rng.standard_normal(a.seconds * 16000)).astype(np.float32)
        scipy.io.wavfile.write(tmp / "noise.wav", 16000, audio)
        shifts = [0] + [int(s) for s in a.shifts.split(",")]
        times = {k: [] for k in shifts}
        for _ in range(a.rounds):
            for k in shifts:
                times[k].append(timed([a.equivd, "features", str(tmp / "noise.wav"), "--bundle", str(bundle),
                                       "--out", str(tmp / "x.npy"), f"--shift-bins={k}"], a.core))
        windows = len(np.load(tmp / "x.npy"))
        manifest = json.loads((bundle / "bundle.json").read_text())
        shape = ",".join(map(str, manifest["models"]["classifier"]["input"]["shape"]))
        classifier = []
        for _ in range(a.rounds):
            done = subprocess.run(["taskset", "-c", str(a.core), a.equivd, "model", "bench", str(bundle / "classifier.onnx"),
                                   "--shape", f"{input_name(bundle)}={shape}", "--runs", "200"],
                                  check=True, capture_output=True, text=True)
            classifier.append(json.loads(done.stdout.splitlines()[0])["median_ms"])
        call = statistics.median(classifier)
        print(f"{windows} windows of a {a.seconds}-s file; classifier call {call:.3f} ms (median of {a.rounds} x 200 runs)")
        print("| shift, bins | resampler, ms / window | share of a classifier call |")
        print("| ---: | ---: | ---: |")
        base = statistics.median(times[0])
        for k in shifts[1:]:
            cost = (statistics.median(times[k]) - base) / windows * 1000
            print(f"| {k:+d} | {cost:.3f} | {100 * cost / call:.0f} % |")


def input_name(bundle):
    import onnx
    return onnx.load(str(bundle / "classifier.onnx"), load_external_data=False).graph.input[0].name


if __name__ == "__main__":
    main()
