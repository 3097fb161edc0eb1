"""Bring your own data: a bundle from a folder of audio files listed in a manifest CSV
(Training/README.md, "Bring your own data")."""

import csv
import fractions
import pathlib
import sys
import tempfile

import numpy as np
import scipy.io.wavfile
import scipy.signal

# PyTorch and onnxruntime are imported when `build` runs: `python -m equivtrain --help` (which
# reads the thresholds below) and `generate` work without them.
from . import features, pretrained, progress

BINS = 168   # equivd's bins (models.BINS), for an empty split's shape

# The checks byod makes of what it trained, each a named threshold printed with its warning
# (with --strict a failing check exits 1).
MIN_VAL_ACCURACY = 0.7        # classifier validation accuracy below this is poor …
MIN_CHANCE_FACTOR = 1.5       # … and so is one below 1.5 × chance (1 / classes), whichever is higher
MIN_SHIFT_EXACT = 0.5         # canonicalizer: share of calibration windows whose shift it finds exactly
MIN_VAL_WINDOWS = 30          # fewer validation windows than this are too few to judge anything by
MIN_VAL_FILES_PER_CLASS = 2   # nor are fewer validation files of a class than this (labelled manifests)
VAL_SHARE = 0.2               # the share of files (of each label) held out for validation and calibration

# Training length in optimizer steps of train.BATCH windows (unless given): this many passes over
# the training windows, at least FLOOR and at most CAP steps, with early stopping.
CLASSIFIER_EPOCHS, CLASSIFIER_FLOOR = 14, 1000
CANON_EPOCHS, CANON_FLOOR = 20, 1500
STEPS_CAP = 30000
# Resampled copies of each recording the canonicalizer also trains (and stops early) on.
RESAMPLED_COPIES = 4
# The separator and FixedPose of mode `partial` (docs/architecture.md §9) are trained from the
# machines (manifest column `machine`) recorded at speeds at least this many bins apart, as the
# canonicalizer reads them (2 bins: a semitone), for this many steps each.
MIN_SPEED_SPREAD_BINS = 2
FIXED_PART_STEPS = 3000
BINS_PER_SEMITONE = 2  # equivd's front end (bundle.json front_end.bins_per_semitone)


def warn(text):
    print(f"warning: {text}", file=sys.stderr, flush=True)


def split_files(labels, rng, share=VAL_SHARE):
    """File indices for training and validation, split by file (no window of a validation file is
    trained on) and within each label ("" for unlabelled rows): round(share · n) files of a label
    with n ≥ 2 files, at least one, go to validation."""
    train_idx, val_idx = [], []
    for label in sorted(set(labels)):
        files = [i for i, l in enumerate(labels) if l == label]
        files = [files[k] for k in rng.permutation(len(files))]
        n_val = max(1, round(share * len(files))) if len(files) >= 2 else 0
        val_idx += files[:n_val]
        train_idx += files[n_val:]
    return np.array(sorted(train_idx), dtype=np.int64), np.array(sorted(val_idx), dtype=np.int64)


def make_set(windows, keep, idx, labels, classes):
    """The windows of files `idx` that replay would classify (`keep`, per file), as X float32
    [N, 1, bins, frames] and y int64 [N] (−1 for a label not in `classes`), and (file, window
    indices) per file. Labels are int64 however many windows there are, none included."""
    X, y, clips = [], [], []
    for i in idx:
        kept = np.flatnonzero(keep[i])
        X.append(windows[i][kept])
        y.append(np.full(len(kept), classes.index(labels[i]) if labels[i] in classes else -1, dtype=np.int64))
        clips.append((int(i), kept))
    frames = windows[idx[0]].shape[2] if len(idx) else 100
    X = np.concatenate(X)[:, None] if X else np.zeros((0, 1, BINS, frames), dtype=np.float32)
    y = np.concatenate(y) if y else np.zeros(0, dtype=np.int64)
    return {"X": X.astype(np.float32), "y": y.astype(np.int64), "clips": clips}


def resampled_copies(paths, files, copies, rng, folder):
    """Each of `files` (indices into `paths`) resampled `copies` times by a random whole shift of
    j ∈ [−SHIFT_RANGE, SHIFT_RANGE] bins, pitch and tempo together (played 2^(j/(12·B)) times
    faster): the exact group action, written as WAV into `folder`. Returns [(file, path, j)]."""
    from .models import SHIFT_RANGE
    made = []
    for i in files:
        x = pretrained.read_audio(paths[i], 16000)
        for c in range(copies):
            j = int(rng.integers(-SHIFT_RANGE, SHIFT_RANGE + 1))
            rate = fractions.Fraction(2 ** (-j / (12 * BINS_PER_SEMITONE))).limit_denominator(500)
            path = pathlib.Path(folder) / f"{i}-{c}.wav"
            scipy.io.wavfile.write(path, 16000, scipy.signal.resample_poly(x, rate.numerator, rate.denominator).astype(np.float32))
            made.append((int(i), path, j))
    return made


def resampled_set(copies, progress_label):
    """Features of resampled copies (`resampled_copies`), silent windows dropped: {"X", "j"}."""
    bar = progress.Progress(progress_label, len(copies), "files")
    windows = features.windows([path for _, path, _ in copies], progress=bar)
    bar.close()
    X, j = [], []
    for (_, _, shift), w in zip(copies, windows):
        kept = w[features.active(w)]
        X.append(kept)
        j.append(np.full(len(kept), shift, dtype=np.int64))
    return {"X": np.concatenate(X)[:, None].astype(np.float32), "j": np.concatenate(j)}


def fixed_part_set(windows, keep, idx, machines, shift_logits):
    """The separator's training windows from unlabelled recordings of one machine at several
    speeds: what stays at its frequency is in all of them, so the per-bin minimum over a machine's
    recordings of the time-mean magnitude (equivtrain.partial.history_minimum) stands in for the
    generator's fixed part, F, of each of its windows. Machines (files `idx`) whose recordings the
    canonicalizer reads less than MIN_SPEED_SPREAD_BINS apart are left out. Returns {"X", "F"}
    (None when no machine qualifies) and the machines used."""
    files = {}
    for i in idx:
        if machines[i] and keep[i].any():
            files.setdefault(machines[i], []).append(i)
    X, F, used = [], [], []
    for machine, mine in sorted(files.items()):
        kept = [windows[i][keep[i]][:, None] for i in mine]
        speeds = [np.median(shift_logits(x).argmax(1)) for x in kept]
        if len(mine) < 2 or max(speeds) - min(speeds) < MIN_SPEED_SPREAD_BINS:
            continue
        fixed = np.log(np.min([np.exp(x).mean(axis=(0, 3)) for x in kept], axis=0))   # [1, bins]
        for x in kept:
            X.append(x)
            F.append(np.broadcast_to(fixed[None, :, :, None], x.shape))
        used.append(machine)
    if not used:
        return None, used
    return {"X": np.concatenate(X), "F": np.concatenate(F).astype(np.float32)}, used


def _steps(given, floor, n_windows, what):
    from . import train
    if given:
        return int(given), f"{what}: {given} steps (given)"
    steps = train.default_steps(n_windows, epochs=CLASSIFIER_EPOCHS if what == "classifier" else CANON_EPOCHS,
                                floor=floor, cap=STEPS_CAP)
    passes = CLASSIFIER_EPOCHS if what == "classifier" else CANON_EPOCHS
    return steps, (f"{what}: {steps} steps (default: {passes} passes over {n_windows} training windows, "
                   f"at least {floor}, at most {STEPS_CAP})")


def build(manifest, out, classifier=None, classes=None, train_classifier=False, steps=None, canon_steps=None,
          eval_every=100, patience=10, strict=False, seed=0, input_spec=None, label_map=None, activation="softmax",
          resampled_copies_per_file=RESAMPLED_COPIES, fixed_part_steps=FIXED_PART_STEPS):
    """Bring your own data: a canonicalizer (prior only: labels not needed) and, if asked, a
    classifier, from a folder of audio files listed in a manifest CSV (path[,label]); or a
    canonicalizer for your own frozen classifier ONNX (`classifier`), which may have an input of
    its own (`input_spec`, a JSON file) and an output map onto labels (`label_map`). A `machine`
    column naming recordings of one machine at several speeds also gives the bundle mode
    `partial`'s separator and FixedPose (no labels needed). Writes a bundle; returns its
    bundle.json as a dict."""
    import torch

    from . import bundle, partial, train
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
    spec = output = None
    if train_classifier and (classifier or input_spec or label_map):
        sys.exit("--train-classifier trains a classifier on equivd's windows: drop --classifier, --input-spec and --label-map")
    if label_map:
        if classes:
            sys.exit("give --classes or --label-map, not both (the label map's keys are the classes)")
        try:
            classes, output = pretrained.load_label_map(label_map, activation)
        except ValueError as error:
            sys.exit(str(error))
    if input_spec:
        try:
            spec = pretrained.load_input(input_spec)
        except ValueError as error:
            sys.exit(str(error))
    classes = sorted(set(labels) - {""}) if not classes else list(classes)
    if train_classifier and (not classes or "" in labels):
        sys.exit(f"{manifest}: --train-classifier needs a label on every row")
    if train_classifier and set(labels) - set(classes):
        sys.exit(f"{manifest}: labels {sorted(set(labels) - set(classes))} are not among --classes")
    if not train_classifier and not classifier:
        sys.exit("give --classifier FROZEN.onnx or --train-classifier")
    if not classes:
        sys.exit("name the frozen classifier's classes: --classes a,b,… or --label-map FILE.json")
    if classifier:
        width = pretrained.output_width(classifier, spec)
        wanted = (max(i for v in output["classes"].values() for i in v) + 1) if output else len(classes)
        if output and width < wanted:
            sys.exit(f"{classifier}: {width} outputs, but the label map names index {wanted - 1}")
        if not output and width != len(classes):
            sys.exit(f"{classifier}: {width} outputs, but {len(classes)} classes are named")
    own_input = spec is not None and spec["kind"] != "equivd_spectrogram"

    # Features (equivd's own windows: the canonicalizer always reads these).
    bar = progress.Progress("features (equivd)", len(paths), "files")
    windows = features.windows(paths, progress=bar)
    bar.close()
    empty = [str(p) for p, w in zip(paths, windows) if len(w) == 0]
    for p in empty[:10]:
        warn(f"{p}: no windows (equivd pads a clip shorter than one window, {pretrained.WINDOW_SPAN} samples at "
             f"16 kHz, with silence: is this an older equivd?): skipped")
    if len(empty) > 10:
        warn(f"… and {len(empty) - 10} more files without windows, skipped")
    keep = [features.active(w) for w in windows]
    total = sum(len(w) for w in windows)
    silent = sum(int((~k).sum()) for k in keep)
    print(f"{len(paths)} files, {total} windows; dropped {silent} silent windows (mean log-band value below "
          f"{features.IDLE_MEAN_LOG}, replay's idle gate) from training, validation and calibration", flush=True)

    rng = np.random.default_rng(seed)
    train_idx, val_idx = split_files(labels, rng)
    checks = []
    if len(val_idx) == 0:
        val_idx = train_idx
        checks.append("no file could be held out (one file per label): validating on the training files")
    sets = {"training": make_set(windows, keep, train_idx, labels, classes),
            "validation": make_set(windows, keep, val_idx, labels, classes)}
    for name, s in sets.items():
        if len(s["X"]) == 0:
            files = train_idx if name == "training" else val_idx
            sys.exit(f"the {name} split has no windows: its {len(files)} files are all silent (mean log-band value "
                     f"below {features.IDLE_MEAN_LOG}) or shorter than one window; add longer or louder recordings")
    val = sets["validation"]
    print(f"split by file: {len(train_idx)} files ({len(sets['training']['X'])} windows) for training, "
          f"{len(val_idx)} files ({len(val['X'])} windows) for validation and calibration", flush=True)

    # The split must be big enough to judge the result by.
    if len(val["X"]) < MIN_VAL_WINDOWS:
        checks.append(f"validation split too small to judge: {len(val['X'])} windows (MIN_VAL_WINDOWS = {MIN_VAL_WINDOWS})")
    foreign = sorted(set(labels) - set(classes) - {""})
    if foreign:
        print(f"manifest labels not among the classes, not used to judge accuracy: {', '.join(foreign)}", flush=True)
    if train_classifier or any(label in classes for label in labels):
        for c in classes:
            n = sum(1 for i in val_idx if labels[i] == c)
            if n < MIN_VAL_FILES_PER_CLASS:
                checks.append(f"validation split too small to judge: {n} validation file(s) of class {c!r} "
                              f"(MIN_VAL_FILES_PER_CLASS = {MIN_VAL_FILES_PER_CLASS})")
    for text in checks:
        warn(text)
    if strict and checks:
        sys.exit(f"--strict: {len(checks)} check(s) failed before training; nothing trained or written")

    provenance = {"manifest": str(manifest), "files": len(paths), "seed": seed,
                  "windows": {"total": total, "silent_dropped": silent, "files_without_windows": len(empty),
                              "training": int(len(sets["training"]["X"])), "validation": int(len(val["X"]))}}
    n_train = len(sets["training"]["X"])
    val_accuracy = None
    if train_classifier:
        n, text = _steps(steps, CLASSIFIER_FLOOR, n_train, "classifier")
        print(text, flush=True)
        classifier, figures = train.train_classifier_steps(sets["training"], val, classes, n, eval_every=eval_every,
                                                           patience=patience, seed=seed)
        val_accuracy = float(train.accuracy(classifier, val["X"], val["y"]))
        classify = bundle.torch_function(classifier, softmax=True)
        provenance["classifier"] = f"trained here: {figures['steps_run']} of {n} steps, best at step {figures['best_step']}"
    else:
        provenance["classifier"] = f"frozen, from {classifier}"
        if not own_input:
            raw = bundle.onnx_function(classifier, softmax=False)
            classify = (lambda X: pretrained.combine(raw(X), output, classes))
    n, text = _steps(canon_steps, CANON_FLOOR, n_train, "canonicalizer")
    print(text, flush=True)
    resampled = resampled_val = None
    if resampled_copies_per_file:
        with tempfile.TemporaryDirectory() as tmp:
            resampled = resampled_set(resampled_copies(paths, train_idx, resampled_copies_per_file, rng, tmp),
                                      "features of resampled training copies")
            resampled_val = resampled_set(resampled_copies(paths, val_idx, resampled_copies_per_file, rng, tmp),
                                          "features of resampled validation copies")
        print(f"{resampled_copies_per_file} resampled copies of each file: {len(resampled['X'])} training and "
              f"{len(resampled_val['X'])} validation windows, the shift exact (early stopping scores these)", flush=True)
    canonicalizer, figures = train.train_canonicalizer_steps(sets["training"], val, n, eval_every=eval_every,
                                                             patience=patience, seed=seed, resampled=resampled,
                                                             resampled_val=resampled_val)
    provenance["canonicalizer"] = (f"prior: {figures['steps_run']} of {n} steps, best at step {figures['best_step']}"
                                   + (f", {resampled_copies_per_file} resampled copies a file" if resampled else ""))
    fixed_part = None
    if "machine" in rows[0]:
        machines = [r["machine"] for r in rows]
        data, used = fixed_part_set(windows, keep, train_idx, machines, bundle.torch_function(canonicalizer, softmax=False))
        skipped = None
        if data is None:
            skipped = (f"no machine in the manifest's machine column has training recordings whose speeds differ by "
                       f"{MIN_SPEED_SPREAD_BINS} bins or more (MIN_SPEED_SPREAD_BINS): mode partial not built")
        elif own_input:
            skipped = "mode partial needs a classifier of equivd's spectrogram: its separator is not built"
        if skipped:
            warn(skipped)
            checks.append(skipped)
        else:
            print(f"separator and FixedPose from {len(used)} machines at several speeds ({len(data['X'])} windows), "
                  f"{fixed_part_steps} steps each", flush=True)
            fixed_part = partial.train_separator(data, fixed_part_steps, seed=seed)
            provenance["fixed_part"] = f"{len(used)} machines at several speeds, {fixed_part_steps} steps each"

    # Calibration on the validation windows. A classifier with an input of its own runs on the
    # clips' own audio at nominal speed, one patch per kept window.
    if own_input:
        bar = progress.Progress("classifier on validation audio", len(val["clips"]), "files")
        scores = pretrained.classifier_scores(classifier, spec, output, classes,
                                              [(paths[i], kept) for i, kept in val["clips"]], progress=bar)
        bar.close()
        thresholds = bundle.calibrate(None, bundle.torch_function(canonicalizer, softmax=False), val["X"], rng,
                                      classifier_p=scores.max(1))
    else:
        thresholds = bundle.calibrate(classify, bundle.torch_function(canonicalizer, softmax=False), val["X"], rng)
        if not train_classifier and (val["y"] >= 0).any():
            scores = classify(val["X"])
    if not train_classifier and (val["y"] >= 0).any():
        labelled = val["y"] >= 0
        val_accuracy = float(np.mean(scores[labelled].argmax(1) == val["y"][labelled]))
    if val_accuracy is not None:
        thresholds["calibration"]["classifier_val_accuracy"] = val_accuracy

    cal = thresholds["calibration"]
    if resampled_val is not None:
        exact, near = train.shift_accuracy(canonicalizer, resampled_val["X"], resampled_val["j"], translated=False)
        cal.update(resampled_windows=int(len(resampled_val["X"])), resampled_shift_accuracy=exact,
                   resampled_shift_within_one_bin=near)
        print(f"on {len(resampled_val['X'])} windows of resampled validation recordings: shift exact {100 * exact:.1f} %, "
              f"within one bin {100 * near:.1f} %", flush=True)
    print(f"calibration on {cal['windows']} validation windows: shift exact {100 * cal['shift_accuracy']:.1f} %, "
          f"within one bin {100 * cal['shift_within_one_bin']:.1f} %; canonicalizer_min_p "
          f"{thresholds['canonicalizer_min_p']:.3f}, classifier_min_p {thresholds['classifier_min_p']:.3f}", flush=True)
    late = []
    if val_accuracy is not None:
        chance = 1.0 / len(classes)
        print(f"classifier validation accuracy {val_accuracy:.3f} (chance {chance:.3f})", flush=True)
        floor = max(MIN_VAL_ACCURACY, MIN_CHANCE_FACTOR * chance)
        if val_accuracy < floor:
            late.append(f"classifier validation accuracy {val_accuracy:.3f} is poor: below {floor:.3f} "
                        f"(MIN_VAL_ACCURACY = {MIN_VAL_ACCURACY}, MIN_CHANCE_FACTOR = {MIN_CHANCE_FACTOR} × chance {chance:.3f})")
    shift_exact = cal.get("resampled_shift_accuracy", cal["shift_accuracy"])
    if shift_exact < MIN_SHIFT_EXACT:
        late.append(f"canonicalizer shift accuracy {shift_exact:.3f} is poor: below MIN_SHIFT_EXACT = {MIN_SHIFT_EXACT}")
    written = bundle.write(out, classifier, canonicalizer, classes, thresholds, provenance,
                           input=spec, output=output)
    if fixed_part is not None:
        written = partial.add_to_bundle(out, *fixed_part)
    print(f"{out}: bundle for {len(classes)} classes from {len(paths)} files", flush=True)
    for text in late:
        warn(text)
    checks += late
    if checks:
        warn(f"{len(checks)} check(s) failed: {'; '.join(checks)}")
        if strict:
            sys.exit(f"--strict: {len(checks)} check(s) failed (the bundle in {out} is written, for inspection)")
    return written
