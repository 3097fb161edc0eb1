"""What mode `partial` costs beyond mode `canon`, in classifier calls, two ways, pinned to one core:

1. its two models alone: `equivd model bench` of the classifier, the separator and FixedPose,
   interleaved, several rounds (medians); the arithmetic between them (an exp and a log per
   value of the window) is not in this figure;
2. in situ: `equivd replay` of the same speed-shifted files in modes canon and partial, interleaved
   (ms per window; the difference is the whole extra, but it is small beside the front end and the
   classifier, so this machine's noise shows in it).

Run: `make bench-partial` (or `.venv/bin/python bench/partial_bench.py --equivd .build/release/equivd`).
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile

import numpy as np
import scipy.io.wavfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = {"classifier": "x=1,1,168,100", "separator": "x=1,1,168,100", "fixed_pose": "x=1,1,168,1"}


def model_ms(equivd, bundle, name):
    out = subprocess.run(["taskset", "-c", "0", equivd, "model", "bench", str(bundle / f"{name}.onnx"), "--shape",
                          MODELS[name], "--runs", "300"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[0])["median_ms"]


def replay_ms(equivd, bundle, wav, mode, report):
    subprocess.run(["taskset", "-c", "0", equivd, "replay", str(wav), "--bundle", str(bundle), "--mode", mode, "--quiet",
                    "--report", report, "--classifier-min-p", "0"], check=True, stderr=subprocess.DEVNULL)
    return json.loads(pathlib.Path(report).read_text())["ms_per_window"]


def speed_shifted(path, seconds=60.0):
    """A minute of generated machines sped up by ±3…12 semitones, one after another."""
    import sys
    sys.path.insert(0, str(ROOT / "Training"))
    from equivtrain import synth
    parts, rng = [], np.random.default_rng(5)
    for i in range(int(seconds // 4)):
        label = synth.CLASSES[i % len(synth.CLASSES)]
        shift = rng.choice([-12, -9, -6, -3, 3, 6, 9, 12])
        machine = synth.make_machine(label, np.random.default_rng([5, i]))
        parts.append(synth.render(machine, 4.0, np.random.default_rng([5, i, 1]), speed=synth.speed_factor(shift)))
    scipy.io.wavfile.write(path, synth.RATE, np.concatenate(parts).astype(np.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--equivd", default=str(ROOT / ".build/release/equivd"))
    ap.add_argument("--bundle", default=str(ROOT / "Models"))
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    bundle = pathlib.Path(a.bundle)
    models = {name: [] for name in MODELS}
    replay = {"canon": [], "partial": []}
    with tempfile.TemporaryDirectory() as tmp:
        wav = pathlib.Path(tmp) / "speed.wav"
        speed_shifted(wav)
        for _ in range(a.rounds):
            for name in MODELS:
                models[name].append(model_ms(a.equivd, bundle, name))
            for mode in replay:
                replay[mode].append(replay_ms(a.equivd, bundle, wav, mode, f"{tmp}/{mode}.json"))
    median = {k: statistics.median(v) for k, v in {**models, **replay}.items()}
    for k, v in {**models, **replay}.items():
        print(f"{k:10s} ms median {median[k]:.3f}  runs {' '.join(f'{x:.3f}' for x in v)}")
    call = median["classifier"]
    extra_models = median["separator"] + median["fixed_pose"]
    extra_replay = median["partial"] - median["canon"]
    print(f"separator + FixedPose {extra_models:.3f} ms = {100 * extra_models / call:.1f} % of a classifier call "
          f"({call:.3f} ms); in situ, partial − canon {extra_replay:.3f} ms a window = {100 * extra_replay / call:.1f} %")


if __name__ == "__main__":
    main()
