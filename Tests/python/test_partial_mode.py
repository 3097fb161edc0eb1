"""Mode `partial` through `equivd replay` (the Swift front end, runtime and FixedPartCanonicalizer)
against the Python reference: equivtrain.partial.canonical_windows with the bundle's ONNX files in
onnxruntime, window by window, on the bundled samples and on test-seed machines sped up and
resampled (where the fixed part moved too)."""

import json
import os
import pathlib
import subprocess

import numpy as np
import scipy.io.wavfile

from equivtrain import features, partial, synth
from equivtrain.bundle import onnx_function

ROOT = pathlib.Path(__file__).resolve().parents[2]
EQUIVD = os.environ.get("EQUIVD", str(ROOT / ".build/debug/equivd"))
MODELS = ROOT / "Models"


def shifted_machines(folder, shifts=(-9, 6)):
    """One test-seed machine per class, sped up and resampled by each of `shifts` semitones, 4 s."""
    wavs = []
    for c, label in enumerate(synth.CLASSES):
        machine = synth.make_machine(label, np.random.default_rng([303, c, 0]))
        for s in shifts:
            sped = synth.render(machine, 4.0, np.random.default_rng([303, c, 0, 100]), speed=synth.speed_factor(s))
            resampled = synth.resample_shift(synth.render(machine, 8.0, np.random.default_rng([303, c, 0, 100])), s)
            for kind, x in (("speed", sped), ("resample", resampled[:4 * synth.RATE])):
                wavs.append(folder / f"{label}-{kind}{s:+d}.wav")
                scipy.io.wavfile.write(wavs[-1], synth.RATE, x.astype(np.float32))
    return wavs


def test_partial_mode_matches_the_python_reference(tmp_path):
    wavs = sorted((ROOT / "Samples").glob("*.wav")) + shifted_machines(tmp_path)
    replayed = subprocess.run([EQUIVD, "replay", *map(str, wavs), "--mode", "partial", "--json", "--classifier-min-p", "0"],
                              check=True, capture_output=True, text=True).stdout
    events = [e for e in map(json.loads, replayed.splitlines()) if e["type"] == "prediction"]
    swift = {str(w): sorted((e for e in events if e["source"] == str(w)), key=lambda e: e["seq"]) for w in wavs}

    windows = features.windows(wavs)
    X = np.concatenate(windows)[:, None]
    canonical, k, j = partial.bundle_readers(MODELS)(X)
    p = onnx_function(MODELS / "classifier.onnx", softmax=True)(canonical)
    classes = json.loads((MODELS / "bundle.json").read_text())["classes"]

    python = iter(zip(p, k, j))
    moved_fixed = {"speed": 0, "resample": 0}
    for wav, count in zip(wavs, map(len, windows)):
        assert len(swift[str(wav)]) == count, wav.name
        for event, (probabilities, shift, fixed_shift) in zip(swift[str(wav)], python):
            where = f"{wav.name} window {event['seq']}"
            assert event["shift_semitones"] == shift / 2, where
            assert event["fixed_shift_semitones"] == fixed_shift / 2, where
            assert event["fallback"] == "none", where
            assert abs(event["p"] - probabilities.max()) < 1e-3, where
            if np.sort(probabilities)[-2] < probabilities.max() - 1e-3:
                assert event["label"] == classes[probabilities.argmax()], where
            moved_fixed["resample" if "resample" in wav.name else "speed"] += fixed_shift != 0
    assert len(events) == len(X) > 150
    # Both branches ran: the fixed part left in place (speed) and moved with the window (resampled).
    assert moved_fixed["speed"] < moved_fixed["resample"], moved_fixed
