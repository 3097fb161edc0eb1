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
                # One recording session per machine too: at every shift (and in the nominal set of
                # the same seed) the noise, knocks and gain are the same draws, so a shifted clip
                # differs from its nominal clip by the shift alone.
                clip_rng = np.random.default_rng([args.seed, c, i, 100, 0])
                if args.kind == "speed":
                    x = synth.render(machine, args.seconds, clip_rng, speed=synth.speed_factor(s))
                else:  # the nominal recording itself, resampled: it lasts --seconds · 2^(−s/12)
                    x = synth.resample_shift(synth.render(machine, args.seconds, clip_rng), s)
                if args.keep:
                    x = x[:int(args.keep * synth.RATE)]
                name = f"{label}-{i:04d}-{args.kind}{s:+03d}.wav"
                scipy.io.wavfile.write(out / name, synth.RATE, x)
                rows.append((name, label, f"{label}-{i:04d}", s, args.kind))
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "machine", "semitones", "kind"])
        w.writerows(rows)
    print(f"{out}: {len(rows)} clips of {args.keep or args.seconds} s, classes {', '.join(synth.CLASSES)}")


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
    """Everything from the seed: datasets, the frozen classifier (exported to --out), then
    `canonicalizers` for it."""
    import torch

    from . import bundle, data, train

    torch.set_num_threads(2)
    splits = {name: data.load(args.data, name) for name in ("train", "val")}
    classifier = train.train_classifier(splits["train"], splits["val"], synth.CLASSES, epochs=args.epochs, seed=args.seed)
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    bundle.export(classifier, pathlib.Path(args.out) / "classifier.onnx", "logits")
    torch.save(classifier.state_dict(), pathlib.Path(args.data) / "classifier.pt")
    canonicalizers(args, {"generator": "equivtrain.synth", "seed": args.seed, "classifier_epochs": args.epochs,
                          "train_windows": int(len(splits["train"]["X"]))})


def canonicalizers(args, provenance=None):
    """For the frozen classifier in --out/classifier.onnx: the canonicalizer with the prior (no
    labels), calibration and bundle.json; the no-prior canonicalizer (task loss through the
    classifier) as row (b)'s bundle; then the results table. `provenance` defaults to the
    classifier's, from the bundle.json already there."""
    import torch

    from . import bundle, data, models, train

    torch.set_num_threads(2)
    out = pathlib.Path(args.out)
    classifier_onnx = out / "classifier.onnx"
    if provenance is None:
        provenance = json.loads((out / "bundle.json").read_text())["provenance"]
    splits = {name: data.load(args.data, name) for name in ("train", "val")}
    prior = train.train_canonicalizer(splits["train"], splits["val"], prior=True, epochs=args.canon_epochs, seed=args.seed)
    thresholds = bundle.calibrate(bundle.onnx_function(classifier_onnx, softmax=True), bundle.torch_function(prior, softmax=False),
                                  splits["val"]["X"], np.random.default_rng(args.seed))
    provenance.update(canonicalizer_epochs=args.canon_epochs, noprior_epochs=args.noprior_epochs)
    bundle.write(out, classifier_onnx, prior, synth.CLASSES, thresholds, provenance)
    print(f"{out}: bundle written; thresholds {thresholds}", flush=True)
    noprior = train.train_canonicalizer(splits["train"], splits["val"], prior=False, epochs=args.noprior_epochs, seed=args.seed,
                                        classifier=models.classifier_from_onnx(classifier_onnx, len(synth.CLASSES)))
    write_noprior_bundle(noprior, out, args.noprior_out, args.noprior_epochs, args.seed)
    torch.save({"prior": prior.state_dict(), "noprior": noprior.state_dict()}, pathlib.Path(args.data) / "canonicalizers.pt")
    write_table(args.data, out, args.noprior_out, args.table)


def write_noprior_bundle(canonicalizer, bundle_dir, out, epochs, seed):
    """Row (b)'s canonicalizer as a bundle of its own: `bundle_dir` with its canonicalizer
    replaced, so that the table and `equivd replay` evaluate the same file."""
    import hashlib
    import shutil

    from . import bundle

    out = pathlib.Path(out)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(bundle_dir, out)
    bundle.export(canonicalizer, out / "canonicalizer.onnx", "shift_logits")
    manifest = json.loads((out / "bundle.json").read_text())
    manifest["models"]["canonicalizer"]["sha256"] = hashlib.sha256((out / "canonicalizer.onnx").read_bytes()).hexdigest()
    manifest["provenance"]["canonicalizer"] = f"no prior, task loss, {epochs} epochs, seed {seed}"
    (out / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")


def write_table(data_root, bundle_dir, noprior_dir, results_md):
    """The results table and the shift-reading table of the bundles, printed and put into their
    sections of `results_md`."""
    from . import evaluate

    for marker, text in zip(("table", "shifts"), evaluate.bundle_tables(data_root, bundle_dir, noprior_dir)):
        print(text, flush=True)
        evaluate.write_section(results_md, marker, text)


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


def table(args):
    write_table(args.data, args.bundle, args.noprior, args.table)


def table_swift(args):
    from . import swift_table
    swift_table.run(args.data, args.bundle, args.equivd, args.results, args.out, args.work)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m equivtrain", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="synthesize line-side machine sounds")
    g.add_argument("--out", required=True)
    g.add_argument("--per-class", type=int, default=20, help="machines per class")
    g.add_argument("--seconds", type=float, default=3.0, help="length of each recording")
    g.add_argument("--keep", type=float, default=0.0,
                   help="keep the first KEEP seconds of each clip (0: all); a recording resampled 12 semitones "
                        "up lasts half as long, so KEEP = --seconds / 2 gives every shift as many windows")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--shifts", default="", help="comma-separated semitones, e.g. -12,-6,0,6,12 (default 0)")
    g.add_argument("--kind", choices=["speed", "resample"], default="speed",
                   help="speed: the machine runs faster/slower; resample: the whole recording is resampled")
    g.set_defaults(run=generate)
    sm = sub.add_parser("samples", help="write the bundled Samples/ clips and labels.csv")
    sm.add_argument("--out", default="Samples")
    sm.add_argument("--seed", type=int, default=7)
    sm.set_defaults(run=samples)
    for name, run, text in (("models", models, "train everything from the seed: the classifier, then `canonicalizers`"),
                             ("canonicalizers", canonicalizers,
                              "both canonicalizers, calibration, the bundle and row (b)'s bundle for --out/classifier.onnx, then `table`")):
        m = sub.add_parser(name, help=text)
        m.add_argument("--data", default="data", help="where generated clips and feature caches go")
        m.add_argument("--out", default="Models")
        m.add_argument("--table", default="docs/results.md")
        m.add_argument("--seed", type=int, default=1)
        m.add_argument("--epochs", type=int, default=14, help="classifier epochs (models only)")
        m.add_argument("--canon-epochs", type=int, default=20)
        m.add_argument("--noprior-epochs", type=int, default=6, help="the task-loss variant costs 3 classifier passes a window")
        m.add_argument("--noprior-out", default="data/noprior-bundle", help="where row (b)'s bundle goes")
        m.set_defaults(run=run)
    tb = sub.add_parser("table", help="the results table of a bundle (and row (b) of a no-prior bundle) on the test "
                                      "sets, and how well each canonicalizer reads the shift")
    tb.add_argument("--data", default="data")
    tb.add_argument("--bundle", default="Models")
    tb.add_argument("--noprior", default="data/noprior-bundle")
    tb.add_argument("--table", default="docs/results.md", help="the table replaces its marked section here")
    tb.set_defaults(run=table)
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
    t = sub.add_parser("table-swift", help="the results table again through `equivd replay`")
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
