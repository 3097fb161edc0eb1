"""The results table (docs/results.md): the frozen classifier alone, with each canonicalizer,
with the top-K fallback, and full group averaging, on the nominal and both shifted test sets.
It evaluates the exported ONNX files (what ships) through onnxruntime on one thread."""

import json
import pathlib
import time

import numpy as np
import torch

from .bundle import onnx_function
from .models import SHIFT_RANGE, translate

SETS = {"nominal": "test", "speed": "speed", "resample": "resample"}
METHODS = [("vanilla", "(a) frozen classifier alone"), ("noprior", "(b) + canonicalizer, no prior"),
           ("prior", "(c) + canonicalizer with prior"), ("topk", "(d) (c) + top-3 fallback"),
           ("groupavg", f"(e) group averaging over {2 * SHIFT_RANGE + 1} shifts"),
           ("partial", "(p) (c), moving back only what turns with the machine"),
           ("oracle", "(o) translation by the true shift (a ceiling, not a method)")]


def _moved(X, shifts):
    """X translated by −shifts (per window), as the canonicalizer's shift is undone."""
    with torch.no_grad():
        return translate(torch.from_numpy(X), -torch.from_numpy(np.asarray(shifts))).numpy()


def predict(method, data, classify, shift_logits, top=3, threshold=0.0, partial=None):
    """Class probabilities per window and the classifier calls each window cost. `classify` and
    `shift_logits[name]` map windows [N, 1, F, T] to class probabilities and shift logits;
    `partial` maps them to (X̃, k, j) (equivtrain.partial.canonical_windows)."""
    X = data["X"]
    n = len(X)
    if method == "vanilla":
        return classify(X), np.ones(n)
    if method == "oracle":
        return classify(_moved(X, 2 * data["semitones"])), np.ones(n)   # B = 2 bins per semitone
    if method == "partial":
        return classify(partial(X)[0]), np.ones(n)
    if method == "groupavg":
        total = sum(classify(_moved(X, np.full(n, k))) for k in range(-SHIFT_RANGE, SHIFT_RANGE + 1))
        return total / (2 * SHIFT_RANGE + 1), np.full(n, 2 * SHIFT_RANGE + 1)
    logits = shift_logits["noprior" if method == "noprior" else "prior"](X)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    probs = classify(_moved(X, p.argmax(1) - SHIFT_RANGE))
    calls = np.ones(n)
    if method == "topk":
        idx = np.where(p.max(1) < threshold)[0]
        if len(idx):
            order = np.argsort(-p[idx], axis=1)[:, :top]
            weights = np.take_along_axis(p[idx], order, axis=1)
            weights /= weights.sum(1, keepdims=True)
            probs[idx] = sum(weights[:, i:i + 1] * classify(_moved(X[idx], order[:, i] - SHIFT_RANGE))
                             for i in range(top))
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


def by_machine(correct, units):
    """Accuracy per machine, in a fixed order of machine names."""
    names = np.unique(units)
    return names, np.array([correct[units == u].mean() for u in names])


def table(sets, classify, shift_logits, threshold, top=3, partial=None):
    """Rows of the results table: accuracy per set, calls and ms per window, consistency; and, for
    each shifted set, the paired difference to (a) on nominal with its standard error over
    machines (windows of one machine are not independent). Rows (b) and (p) only where their
    readers are given."""
    rows, nominal_by_machine = [], None
    for key, name in METHODS:
        if (key == "noprior" and "noprior" not in shift_logits) or (key == "partial" and partial is None):
            continue
        row = {"method": name}
        calls_all, seconds, windows = [], 0.0, 0
        for set_name, data in sets.items():
            started = time.perf_counter()
            probs, calls = predict(key, data, classify, shift_logits, top=top, threshold=threshold, partial=partial)
            seconds += time.perf_counter() - started
            windows += len(data["X"])
            labels = probs.argmax(1)
            correct = labels == data["y"]
            row[set_name] = 100 * correct.mean()
            units, per_machine = by_machine(correct, data["unit"])
            if key == "vanilla" and set_name == "nominal":
                nominal_by_machine = dict(zip(units, per_machine))
            if set_name != "nominal":
                row[f"{set_name} consistency"] = 100 * consistency(labels, data)
                if nominal_by_machine is not None:
                    diff = 100 * (per_machine - np.array([nominal_by_machine[u] for u in units]))
                    row[f"{set_name} vs (a) nominal"] = (float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff))))
            calls_all.append(calls)
        row["calls"] = float(np.concatenate(calls_all).mean())
        row["ms"] = 1e3 * seconds / windows
        rows.append(row)
    return rows


def markdown(rows, counts):
    head = ("| method | nominal | speed shift | resample shift | speed − (a) nominal | resample − (a) nominal "
            "| classifier calls / window | ms / window | consistent across shifts: speed | resample |")
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        paired = [f"{r[k][0]:+.1f} ± {r[k][1]:.1f}" if k in r else "" for k in ("speed vs (a) nominal", "resample vs (a) nominal")]
        lines.append(f"| {r['method']} | {r['nominal']:.1f} | {r['speed']:.1f} | {r['resample']:.1f} | {paired[0]} | {paired[1]} "
                     f"| {r['calls']:.2f} | {r['ms']:.2f} | {r['speed consistency']:.1f} | {r['resample consistency']:.1f} |")
    lines.append("")
    lines.append(f"Windows: nominal {counts['nominal']}, speed shift {counts['speed']}, resample shift {counts['resample']}, "
                 f"from the same {counts['machines']} machines. The ± columns are the shifted accuracy minus (a)'s "
                 "nominal accuracy, machine by machine, with the standard error over machines.")
    return "\n".join(lines)


def bundle_tables(data_root, bundle, noprior_bundle=None):
    """For a bundle folder (its classifier, canonicalizer and top-K threshold) and, if given, a
    no-prior bundle (row (b)), on the test sets loaded once: the results table and the
    shift-reading table, as markdown."""
    from . import datasets, partial

    torch.set_num_threads(1)
    sets = {name: datasets.load(data_root, split) for name, split in SETS.items()}
    bundle = pathlib.Path(bundle)
    classify = onnx_function(bundle / "classifier.onnx", softmax=True, threads=1)
    shift_logits = {"prior": onnx_function(bundle / "canonicalizer.onnx", softmax=False, threads=1)}
    if noprior_bundle is not None and (pathlib.Path(noprior_bundle) / "canonicalizer.onnx").exists():
        shift_logits["noprior"] = onnx_function(pathlib.Path(noprior_bundle) / "canonicalizer.onnx", softmax=False, threads=1)
    threshold = json.loads((bundle / "bundle.json").read_text())["thresholds"]["canonicalizer_min_p"]
    rows = table(sets, classify, shift_logits, threshold, partial=partial.bundle_readers(bundle))
    counts = {name: len(data["X"]) for name, data in sets.items()}
    counts["machines"] = len(np.unique(sets["nominal"]["unit"]))
    return markdown(rows, counts), shift_markdown(sets, shift_logits)


def shift_reading(data, shift_logits):
    """How well a canonicalizer reads the shift a set was made with: the share of windows (in %)
    whose top shift is within one bin of the true 2·s, per tested shift s and over the set."""
    k = shift_logits(data["X"]).argmax(1) - SHIFT_RANGE
    close = np.abs(k - 2 * data["semitones"]) <= 1      # B = 2 bins per semitone
    per_shift = {int(s): 100 * close[data["semitones"] == s].mean() for s in np.unique(data["semitones"])}
    return per_shift, 100 * close.mean()


def shift_markdown(sets, shift_logits):
    """shift_reading of each canonicalizer (row (b) first, if there) on each shifted set."""
    names = [(key, name) for key, name in (("noprior", "(b) no prior"), ("prior", "(c) with prior")) if key in shift_logits]
    lines = []
    for key, name in names:
        for set_name, data in sets.items():
            if set_name == "nominal":
                continue
            per_shift, overall = shift_reading(data, shift_logits[key])
            if not lines:
                lines = ["| canonicalizer | set | " + " | ".join(f"{s:+d} st" for s in per_shift) + " | all |",
                         "| --- | --- |" + " ---: |" * (len(per_shift) + 1)]
            lines.append(f"| {name} | {set_name} shift | " + " | ".join(f"{v:.1f}" for v in per_shift.values())
                         + f" | {overall:.1f} |")
    lines += ["", "Share of windows (%) whose top shift is within one bin (a quarter tone) of the shift the set "
              "was made with. A no-prior canonicalizer settles on a shift that depends on the class, not on "
              "the speed, so it reads none (docs/architecture.md §7)."]
    return "\n".join(lines)
