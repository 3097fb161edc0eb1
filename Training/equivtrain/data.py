"""Datasets: generated clips → equivd features → cached arrays (X windows, labels, units, shifts)."""

import argparse
import csv
import pathlib

import numpy as np

from . import features, synth
from .__main__ import generate

SHIFTS = (-12, -9, -6, -3, 0, 3, 6, 9, 12)

# name: (machines per class, seconds per clip, seed, shifts, kind)
SPLITS = {
    "train": (150, 4.0, 101, (0,), "speed"),
    "val": (40, 4.0, 202, (0,), "speed"),
    "test": (50, 4.0, 303, (0,), "speed"),
    "speed": (25, 3.0, 404, SHIFTS, "speed"),
    "resample": (25, 3.0, 404, SHIFTS, "resample"),
}


def load(root, name):
    """The split `name` under `root`, generating and extracting it the first time."""
    root = pathlib.Path(root)
    cache = root / f"{name}.npz"
    if not cache.exists():
        per_class, seconds, seed, shifts, kind = SPLITS[name]
        folder = root / name
        generate(argparse.Namespace(out=str(folder), per_class=per_class, seconds=seconds, seed=seed,
                                    shifts=",".join(map(str, shifts)), kind=kind))
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
