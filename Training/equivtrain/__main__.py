"""python -m equivtrain COMMAND …   (Training/README.md)"""

import argparse
import csv
import json
import pathlib
import sys

import numpy as np
import scipy.io.wavfile
import scipy.signal

from . import synth


def generate(args):
    """Writes WAV clips and a manifest (path,label,machine,semitones,kind) into --out."""
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shifts = [int(s) for s in args.shifts.split(",")] if args.shifts else [0]
    rows = []
    for c, label in enumerate(synth.CLASSES):
        for i in range(args.per_class):
            # One generator per machine: the same unit sounds the same in every set that asks for it.
            machine_rng = np.random.default_rng([args.seed, c, i])
            machine = synth.make_machine(label, machine_rng)
            for s in shifts:
                clip_rng = np.random.default_rng([args.seed, c, i, s + 100, 1 if args.kind == "resample" else 0])
                if args.kind == "speed":
                    x = synth.render(machine, args.seconds, clip_rng, speed=synth.speed_factor(s))
                else:
                    seconds = args.seconds * synth.speed_factor(s)  # so the shifted clip lasts --seconds
                    x = synth.resample_shift(synth.render(machine, seconds, clip_rng), s)
                name = f"{label}-{i:04d}-{args.kind}{s:+03d}.wav"
                scipy.io.wavfile.write(out / name, synth.RATE, x)
                rows.append((name, label, f"{label}-{i:04d}", s, args.kind))
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "machine", "semitones", "kind"])
        w.writerows(rows)
    print(f"{out}: {len(rows)} clips of {args.seconds} s, classes {', '.join(synth.CLASSES)}")


def samples(args):
    """A few short labelled clips per class at nominal and shifted speeds (Samples/), 16-bit WAV,
    plus one 44.1 kHz stereo copy that exercises resampling and downmixing."""
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for c, label in enumerate(synth.CLASSES):
        machine = synth.make_machine(label, np.random.default_rng([args.seed, c]))
        for s in (0, 5, -7):
            x = synth.render(machine, 3.0, np.random.default_rng([args.seed, c, s + 100]), speed=synth.speed_factor(s))
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


def models(args):
    """Everything from the seed: datasets, the frozen classifier, both canonicalizers, the
    results table (docs/results.md), calibration and the bundle (Models/)."""
    import torch

    from . import bundle, data, evaluate, train

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    root = pathlib.Path(args.data)
    splits = {name: data.load(root, name) for name in ("train", "val", "test", "speed", "resample")}
    classifier = train.train_classifier(splits["train"], splits["val"], synth.CLASSES, epochs=args.epochs, seed=args.seed)
    prior = train.train_canonicalizer(splits["train"], splits["val"], prior=True, epochs=args.canon_epochs, seed=args.seed)
    noprior = train.train_canonicalizer(splits["train"], splits["val"], classifier=classifier, prior=False,
                                        epochs=args.noprior_epochs, seed=args.seed)
    thresholds = bundle.calibrate(bundle.torch_function(classifier, softmax=True), bundle.torch_function(prior, softmax=False),
                                  splits["val"]["X"], np.random.default_rng(args.seed))
    counts = {"nominal": len(splits["test"]["X"]), "speed": len(splits["speed"]["X"]), "resample": len(splits["resample"]["X"])}
    provenance = {"generator": "equivtrain.synth", "seed": args.seed, "classifier_epochs": args.epochs,
                  "canonicalizer_epochs": args.canon_epochs, "noprior_epochs": args.noprior_epochs,
                  "train_windows": int(len(splits["train"]["X"]))}
    # The bundle first: the table (group averaging alone is 2K+1 classifier passes a window) comes after.
    bundle.write(args.out, classifier, prior, synth.CLASSES, thresholds, provenance)
    torch.save({"classifier": classifier.state_dict(), "prior": prior.state_dict(), "noprior": noprior.state_dict()},
               root / "models.pt")
    print(f"{args.out}: bundle written; thresholds {thresholds}", flush=True)
    rows = evaluate.table({"nominal": splits["test"], "speed": splits["speed"], "resample": splits["resample"]},
                          classifier, {"prior": prior, "noprior": noprior}, thresholds["canonicalizer_min_p"])
    table = evaluate.markdown(rows, counts)
    print(table)
    pathlib.Path(args.table).write_text(RESULTS_HEADER.format(seed=args.seed) + table + "\n")


def byod(args):
    """Bring your own data: a canonicalizer (prior only: labels not needed) and, if asked, a
    classifier, from a folder of audio files listed in a manifest CSV (path[,label]); or a
    canonicalizer for your own frozen classifier ONNX (--classifier). Writes a bundle."""
    import torch

    from . import bundle, features, train

    torch.set_num_threads(2)
    manifest = pathlib.Path(args.manifest)
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
    classes = sorted(set(labels) - {""}) if not args.classes else args.classes.split(",")
    if args.train_classifier and (not classes or "" in labels):
        sys.exit(f"{manifest}: --train-classifier needs a label on every row")
    if not args.train_classifier and not args.classifier:
        sys.exit("give --classifier FROZEN.onnx or --train-classifier")
    windows = features.windows(paths)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(paths))
    cut = max(1, int(0.8 * len(paths)))  # files, not windows, are split: no leakage
    split = {"train": order[:cut], "val": order[cut:] if cut < len(paths) else order[:1]}
    sets = {}
    for name, idx in split.items():
        X = np.concatenate([windows[i] for i in idx])[:, None]
        y = np.concatenate([[classes.index(labels[i]) if labels[i] in classes else -1] * len(windows[i]) for i in idx])
        sets[name] = {"X": X.astype(np.float32), "y": y}
    if args.train_classifier:
        classifier = train.train_classifier(sets["train"], sets["val"], classes, epochs=args.epochs, seed=args.seed)
        classify = bundle.torch_function(classifier, softmax=True)
    else:
        classifier = args.classifier
        classify = bundle.onnx_function(args.classifier, softmax=True)
    canonicalizer = train.train_canonicalizer(sets["train"], sets["val"], prior=True, epochs=args.canon_epochs, seed=args.seed)
    thresholds = bundle.calibrate(classify, bundle.torch_function(canonicalizer, softmax=False), sets["val"]["X"], rng)
    provenance = {"manifest": str(manifest), "files": len(paths), "seed": args.seed,
                  "classifier": "trained here" if args.train_classifier else f"frozen, from {args.classifier}"}
    bundle.write(args.out, classifier, canonicalizer, classes, thresholds, provenance)
    print(f"{args.out}: bundle for {len(classes)} classes from {len(paths)} files")


RESULTS_HEADER = """# Results

Made by `make models` (`python -m equivtrain models`, seed {seed}) on the generated line-side
machine sounds (Training/README.md): the frozen classifier is trained on nominal-speed windows
only; the canonicalizer with the prior never sees a label. Accuracy is per 1 s window, in %;
"consistent across shifts" is the share of test machines whose clip-level label is the same at
all nine tested shifts (−12…+12 semitones in steps of 3). Milliseconds per window are PyTorch on
one thread, feature windows given (the Swift path is measured in issue 5).

"""


def noprior(args):
    """Row (b) again: the no-prior canonicalizer (task loss through the bundle's frozen
    classifier, seeded as `models` seeds it) trained against Models/classifier.onnx, written as a
    bundle of its own for `equivd replay`, and its Python figures on the same test sets."""
    import hashlib
    import shutil

    import torch

    from . import bundle, data, evaluate, models, train

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    root = pathlib.Path(args.data)
    splits = {name: data.load(root, name) for name in ("train", "val", "test", "speed", "resample")}
    classifier = models.classifier_from_onnx(pathlib.Path(args.bundle) / "classifier.onnx", len(synth.CLASSES))
    canonicalizer = train.train_canonicalizer(splits["train"], splits["val"], classifier=classifier, prior=False,
                                              epochs=args.noprior_epochs, seed=args.seed)
    out = pathlib.Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(args.bundle, out)
    bundle.export(canonicalizer, out / "canonicalizer.onnx", "shift_logits")
    manifest = json.loads((out / "bundle.json").read_text())
    manifest["models"]["canonicalizer"]["sha256"] = hashlib.sha256((out / "canonicalizer.onnx").read_bytes()).hexdigest()
    manifest["provenance"]["canonicalizer"] = f"no prior, task loss, {args.noprior_epochs} epochs, seed {args.seed}"
    (out / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    sets = {"nominal": splits["test"], "speed": splits["speed"], "resample": splits["resample"]}
    row = evaluate.table(sets, classifier, {"noprior": canonicalizer}, 0.0, only={"noprior"})[0]
    print(json.dumps(row))
    (out / "python-row-b.json").write_text(json.dumps(row, indent=2) + "\n")


def table_swift(args):
    from . import swift_table
    swift_table.run(args.data, args.bundle, args.equivd, args.results, args.out, args.work)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m equivtrain", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="synthesize line-side machine sounds")
    g.add_argument("--out", required=True)
    g.add_argument("--per-class", type=int, default=20, help="machines per class")
    g.add_argument("--seconds", type=float, default=3.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--shifts", default="", help="comma-separated semitones, e.g. -12,-6,0,6,12 (default 0)")
    g.add_argument("--kind", choices=["speed", "resample"], default="speed",
                   help="speed: the machine runs faster/slower; resample: the whole recording is resampled")
    g.set_defaults(run=generate)
    sm = sub.add_parser("samples", help="write the bundled Samples/ clips and labels.csv")
    sm.add_argument("--out", default="Samples")
    sm.add_argument("--seed", type=int, default=7)
    sm.set_defaults(run=samples)
    m = sub.add_parser("models", help="train everything from the seed and write the bundle and results table")
    m.add_argument("--data", default="data", help="where generated clips and feature caches go")
    m.add_argument("--out", default="Models")
    m.add_argument("--table", default="docs/results.md")
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--epochs", type=int, default=14)
    m.add_argument("--canon-epochs", type=int, default=20)
    m.add_argument("--noprior-epochs", type=int, default=6, help="the task-loss variant costs 3 classifier passes a window")
    m.set_defaults(run=models)
    b = sub.add_parser("byod", help="train from your own audio files (manifest CSV: path[,label])")
    b.add_argument("--manifest", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--classifier", help="your frozen classifier as ONNX (input [N, 1, 168, 100], output logits)")
    b.add_argument("--classes", help="comma-separated class names of --classifier's outputs, in order")
    b.add_argument("--train-classifier", action="store_true", help="also train a classifier (needs labels)")
    b.add_argument("--epochs", type=int, default=14)
    b.add_argument("--canon-epochs", type=int, default=20)
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(run=byod)
    n = sub.add_parser("noprior", help="row (b): the no-prior canonicalizer against the bundle's classifier, as a bundle")
    n.add_argument("--data", default="data")
    n.add_argument("--bundle", default="Models")
    n.add_argument("--out", default="data/noprior-bundle")
    n.add_argument("--seed", type=int, default=1)
    n.add_argument("--noprior-epochs", type=int, default=6)
    n.set_defaults(run=noprior)
    t = sub.add_parser("table-swift", help="the results table again through `equivd replay` (issue 5)")
    t.add_argument("--data", default="data")
    t.add_argument("--bundle", default="Models")
    t.add_argument("--equivd", default=".build/release/equivd")
    t.add_argument("--results", default="docs/results.md", help="where the Python figures are read")
    t.add_argument("--out", default="docs/results.md", help="the table replaces its marked section here")
    t.add_argument("--work", default="data/table-swift", help="manifests and per-run reports")
    t.set_defaults(run=table_swift)
    args = ap.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
