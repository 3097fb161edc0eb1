"""Datasets: generated clips → equivd features → cached arrays (X windows, labels, units, shifts)."""

import argparse
import csv
import pathlib

import numpy as np

from . import features, synth
from .__main__ import generate

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
        generate(argparse.Namespace(out=str(folder), per_class=per_class, seconds=seconds, seed=seed,
                                    shifts=",".join(map(str, shifts)), kind=kind, keep=keep))
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
