"""Datasets: generated clips (`generate`, `samples`) → equivd features → cached arrays (X windows,
labels, units, shifts)."""

import csv
import pathlib

import numpy as np
import scipy.io.wavfile
import scipy.signal

from . import features, synth

SHIFTS = (-12, -9, -6, -3, 0, 3, 6, 9, 12)

# name: (machines per class, seconds per recording, seed, shifts, kind, seconds kept per clip).
# The shifted sets play the nominal test set's own recordings (same seed, count and length): the
# speed set's clip at 0 semitones is the first half of the nominal clip, the resample set
# resamples the nominal recording itself, so only the shift differs. Each keeps its first 4 s,
# which every shift has (+12 semitones halves the 8 s recording): as many windows per shift.
SPLITS = {
    "train": (150, 4.0, 101, (0,), "speed", 0.0),
    "val": (40, 4.0, 202, (0,), "speed", 0.0),
    "test": (50, 8.0, 303, (0,), "speed", 0.0),
    "speed": (50, 8.0, 303, SHIFTS, "speed", 4.0),
    "resample": (50, 8.0, 303, SHIFTS, "resample", 4.0),
}


def load(root, name):
    """The split `name` under `root`, generating and extracting it the first time."""
    root = pathlib.Path(root)
    cache = root / f"{name}.npz"
    if not cache.exists():
        per_class, seconds, seed, shifts, kind, keep = SPLITS[name]
        folder = root / name
        generate(folder, per_class=per_class, seconds=seconds, seed=seed, shifts=shifts, kind=kind, keep=keep)
        save(folder, cache)
    data = np.load(cache)
    return {k: data[k] for k in data.files}


def save(folder, cache):
    """Extracts features for every clip of a generated folder (its manifest.csv) into `cache`."""
    with open(pathlib.Path(folder) / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    windows = features.windows([pathlib.Path(folder) / r["path"] for r in rows])
    label_of = {c: i for i, c in enumerate(synth.CLASSES)}
    X, y, clip, unit, shift = [], [], [], [], []
    for i, (r, w) in enumerate(zip(rows, windows)):
        X.append(w)
        y += [label_of.get(r.get("label", ""), -1)] * len(w)
        clip += [i] * len(w)
        unit += [r.get("machine", r["path"])] * len(w)
        shift += [int(r.get("semitones") or 0)] * len(w)
    np.savez(cache, X=np.concatenate(X).astype(np.float32)[:, None], y=np.array(y), clip=np.array(clip),
             unit=np.array(unit), semitones=np.array(shift))


def generate(out, per_class, seconds, seed, shifts=(0,), kind="speed", keep=0.0):
    """Writes WAV clips of `per_class` machines per class, `seconds` long, at each of `shifts`
    (semitones; `kind` "speed" or "resample"), and a manifest (path,label,machine,semitones,kind)
    into `out`; `keep` > 0 keeps the first `keep` seconds of each clip."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for c, label in enumerate(synth.CLASSES):
        for i in range(per_class):
            # One generator per machine: the same unit sounds the same in every set that asks for it.
            machine_rng = np.random.default_rng([seed, c, i])
            machine = synth.make_machine(label, machine_rng)
            for s in shifts:
                # One recording session per machine too: at every shift (and in the nominal set of
                # the same seed) the noise, knocks and gain are the same draws, so a shifted clip
                # differs from its nominal clip by the shift alone.
                clip_rng = np.random.default_rng([seed, c, i, 100, 0])
                if kind == "speed":
                    x = synth.render(machine, seconds, clip_rng, speed=synth.speed_factor(s))
                else:  # the nominal recording itself, resampled: it lasts --seconds · 2^(−s/12)
                    x = synth.resample_shift(synth.render(machine, seconds, clip_rng), s)
                if keep:
                    x = x[:int(keep * synth.RATE)]
                name = f"{label}-{i:04d}-{kind}{s:+03d}.wav"
                scipy.io.wavfile.write(out / name, synth.RATE, x)
                rows.append((name, label, f"{label}-{i:04d}", s, kind))
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "machine", "semitones", "kind"])
        w.writerows(rows)
    print(f"{out}: {len(rows)} clips of {keep or seconds} s, classes {', '.join(synth.CLASSES)}")


def samples(out, seed=7):
    """A few short labelled clips per class at nominal and shifted speeds (Samples/), 16-bit WAV,
    plus one 44.1 kHz stereo copy that exercises resampling and downmixing."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for c, label in enumerate(synth.CLASSES):
        machine = synth.make_machine(label, np.random.default_rng([seed, c]))
        for s in (0, 5, -7):
            x = synth.render(machine, 3.0, np.random.default_rng([seed, c, s + 100]), speed=synth.speed_factor(s))
            name = f"{label}-{'nominal' if s == 0 else f'speed{s:+d}st'}.wav"
            scipy.io.wavfile.write(out / name, synth.RATE, (x * 32767).astype(np.int16))
            rows.append((name, label, s, "speed"))
    gear = scipy.io.wavfile.read(out / "gear-nominal.wav")[1].astype(np.float64)
    stereo = scipy.signal.resample_poly(gear, 441, 160)
    scipy.io.wavfile.write(out / "gear-nominal-44k1-stereo.wav", 44100,
                           np.stack([stereo, 0.8 * stereo], axis=1).astype(np.int16))
    rows.append(("gear-nominal-44k1-stereo.wav", "gear", 0, "speed"))
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "semitones", "kind"])
        w.writerows(rows)
    print(f"{out}: {len(rows)} labelled clips")
