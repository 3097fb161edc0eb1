"""The results table (docs/results.md): the frozen classifier alone, with each canonicalizer,
with the top-K fallback, and full group averaging, on the nominal and both shifted test sets."""

import time

import numpy as np
import torch

from .models import SHIFT_RANGE, translate


def _softmax_batches(model, X, shifts=None, batch=256):
    """Softmax outputs of `model` on X translated by −shifts (per window)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch):
            xb = torch.from_numpy(X[start:start + batch])
            if shifts is not None:
                xb = translate(xb, -torch.from_numpy(shifts[start:start + batch]))
            out.append(torch.softmax(model(xb), dim=1).numpy())
    return np.concatenate(out)


def shift_probabilities(canonicalizer, X, batch=256):
    """p over candidate shifts k = −K…K for each window."""
    return _softmax_batches(canonicalizer, X, batch=batch)


def predict(method, X, classifier, canonicalizers, top=3, threshold=0.0):
    """Class probabilities per window and the classifier calls each window cost."""
    n = len(X)
    if method == "vanilla":
        return _softmax_batches(classifier, X), np.ones(n)
    if method == "groupavg":
        total = 0
        for k in range(-SHIFT_RANGE, SHIFT_RANGE + 1):
            total = total + _softmax_batches(classifier, X, np.full(n, k))
        return total / (2 * SHIFT_RANGE + 1), np.full(n, 2 * SHIFT_RANGE + 1)
    p = shift_probabilities(canonicalizers["noprior" if method == "noprior" else "prior"], X)
    best = p.argmax(1) - SHIFT_RANGE
    probs = _softmax_batches(classifier, X, best)
    calls = np.ones(n)
    if method == "topk":
        unsure = p.max(1) < threshold
        if unsure.any():
            idx = np.where(unsure)[0]
            order = np.argsort(-p[idx], axis=1)[:, :top]
            weights = np.take_along_axis(p[idx], order, axis=1)
            weights /= weights.sum(1, keepdims=True)
            mix = 0
            for i in range(top):
                mix = mix + weights[:, i:i + 1] * _softmax_batches(classifier, X[idx], order[:, i] - SHIFT_RANGE)
            probs[idx] = mix
            calls[idx] = top
    return probs, calls


def consistency(labels, data):
    """Share of machines whose clip-level label (majority over its windows) is the same at every
    tested shift."""
    by_unit = {}
    for unit, clip in sorted(set(zip(data["unit"], data["clip"]))):
        votes = labels[data["clip"] == clip]
        by_unit.setdefault(unit, []).append(np.bincount(votes).argmax())
    return np.mean([len(set(v)) == 1 for v in by_unit.values()])


def table(sets, classifier, canonicalizers, threshold, top=3, only=None):
    """Rows of the results table (those named in `only`, or all): accuracy per set, calls and ms
    per window, consistency."""
    torch.set_num_threads(1)
    methods = [("vanilla", "(a) frozen classifier alone"), ("noprior", "(b) + canonicalizer, no prior"),
               ("prior", "(c) + canonicalizer with prior"), ("topk", f"(d) (c) + top-{top} fallback"),
               ("groupavg", f"(e) group averaging over {2 * SHIFT_RANGE + 1} shifts")]
    rows = []
    for key, name in methods:
        if only is not None and key not in only:
            continue
        row = {"method": name}
        calls_all, seconds, windows = [], 0.0, 0
        for set_name, data in sets.items():
            started = time.perf_counter()
            probs, calls = predict(key, data["X"], classifier, canonicalizers, top=top, threshold=threshold)
            seconds += time.perf_counter() - started
            windows += len(data["X"])
            labels = probs.argmax(1)
            row[set_name] = 100 * np.mean(labels == data["y"])
            if set_name != "nominal":
                row[f"{set_name} consistency"] = 100 * consistency(labels, data)
            calls_all.append(calls)
        row["calls"] = float(np.concatenate(calls_all).mean())
        row["ms"] = 1e3 * seconds / windows
        rows.append(row)
    return rows


def markdown(rows, counts):
    head = ("| method | nominal | speed shift | resample shift | classifier calls / window | ms / window "
            "| consistent across shifts: speed | resample |")
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['nominal']:.1f} | {r['speed']:.1f} | {r['resample']:.1f} | {r['calls']:.2f} "
                     f"| {r['ms']:.2f} | {r['speed consistency']:.1f} | {r['resample consistency']:.1f} |")
    lines.append("")
    lines.append(f"Windows: nominal {counts['nominal']}, speed shift {counts['speed']}, resample shift {counts['resample']}; "
                 f"standard error of an accuracy near 90 % is about {100 * np.sqrt(0.09 / counts['speed']):.1f} points on the shifted sets.")
    return "\n".join(lines)
