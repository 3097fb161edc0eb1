"""Bring your own data: a bundle from a folder of audio files listed in a manifest CSV."""

import csv
import pathlib
import sys

import numpy as np
import torch

from . import bundle, features, train


def build(manifest, out, classifier=None, classes=None, train_classifier=False, epochs=14, canon_epochs=20, seed=0):
    """Bring your own data: a canonicalizer (prior only: labels not needed) and, if asked, a
    classifier, from a folder of audio files listed in a manifest CSV (path[,label]); or a
    canonicalizer for your own frozen classifier ONNX (--classifier). Writes a bundle."""
    torch.set_num_threads(2)
    manifest = pathlib.Path(manifest)
    with open(manifest) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{manifest}: no rows")
    if "path" not in rows[0]:
        sys.exit(f"{manifest}: needs a 'path' column (and optionally 'label')")
    paths = [manifest.parent / r["path"] for r in rows]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        sys.exit(f"{manifest}: {len(missing)} listed files do not exist, e.g. {missing[0]}")
    labels = [r.get("label") or "" for r in rows]
    classes = sorted(set(labels) - {""}) if not classes else list(classes)
    if train_classifier and (not classes or "" in labels):
        sys.exit(f"{manifest}: --train-classifier needs a label on every row")
    if not train_classifier and not classifier:
        sys.exit("give --classifier FROZEN.onnx or --train-classifier")
    windows = features.windows(paths)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(paths))
    cut = max(1, int(0.8 * len(paths)))  # files, not windows, are split: no leakage
    split = {"train": order[:cut], "val": order[cut:] if cut < len(paths) else order[:1]}
    sets = {}
    for name, idx in split.items():
        X = np.concatenate([windows[i] for i in idx])[:, None]
        y = np.concatenate([[classes.index(labels[i]) if labels[i] in classes else -1] * len(windows[i]) for i in idx])
        sets[name] = {"X": X.astype(np.float32), "y": y}
    if train_classifier:
        classifier = train.train_classifier(sets["train"], sets["val"], classes, epochs=epochs, seed=seed)
        classify = bundle.torch_function(classifier, softmax=True)
    else:
        classify = bundle.onnx_function(classifier, softmax=True)
    canonicalizer = train.train_canonicalizer(sets["train"], sets["val"], prior=True, epochs=canon_epochs, seed=seed)
    thresholds = bundle.calibrate(classify, bundle.torch_function(canonicalizer, softmax=False), sets["val"]["X"], rng)
    provenance = {"manifest": str(manifest), "files": len(paths), "seed": seed,
                  "classifier": "trained here" if train_classifier else f"frozen, from {classifier}"}
    bundle.write(out, classifier, canonicalizer, classes, thresholds, provenance)
    print(f"{out}: bundle for {len(classes)} classes from {len(paths)} files")
