"""python -m equivtrain COMMAND …   (Training/README.md)"""

import argparse
import sys

# Each command imports what it needs when it runs: `generate` and `samples` work without PyTorch.


def _generate(a):
    from . import datasets
    shifts = [int(s) for s in a.shifts.split(",")] if a.shifts else [0]
    datasets.generate(a.out, per_class=a.per_class, seconds=a.seconds, seed=a.seed, shifts=shifts, kind=a.kind, keep=a.keep)


def _samples(a):
    from . import datasets
    datasets.samples(a.out, seed=a.seed)


def _models(a):
    from . import train
    train.train_models(a.data, a.out, a.table, seed=a.seed, epochs=a.epochs, canon_epochs=a.canon_epochs,
                       noprior_epochs=a.noprior_epochs, noprior_out=a.noprior_out)


def _canonicalizers(a):
    from . import train
    train.train_canonicalizers(a.data, a.out, a.table, seed=a.seed, canon_epochs=a.canon_epochs,
                               noprior_epochs=a.noprior_epochs, noprior_out=a.noprior_out)


def _table(a):
    from . import report
    report.write_table(a.data, a.bundle, a.noprior, a.table)


def _byod(a):
    from . import byod
    byod.build(a.manifest, a.out, classifier=a.classifier, classes=a.classes.split(",") if a.classes else None,
               train_classifier=a.train_classifier, steps=a.steps, canon_steps=a.canon_steps, eval_every=a.eval_every,
               patience=a.patience, strict=a.strict, seed=a.seed, input_spec=a.input_spec, label_map=a.label_map,
               activation=a.activation, resampled_copies_per_file=a.resampled_copies, fixed_part_steps=a.fixed_part_steps)


def _real_table(a):
    from . import real_table
    bundles = [tuple(b.split("=", 1)) for b in a.bundle]
    real_table.run(a.recordings, bundles, a.equivd, a.out, a.work)


def _partial_table(a):
    from . import partial
    partial.run(a.bundle, a.work, a.out, per_class=a.per_class, steps=a.steps)


def _fixed_part(a):
    from . import partial
    partial.fit(a.bundle, a.work, per_class=a.per_class, steps=a.steps)


def _table_swift(a):
    from . import swift_table
    swift_table.run(a.data, a.bundle, a.equivd, a.results, a.out, a.work, rows=a.rows)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default: "(required)", "(default: off)" for a flag,
    "(default: none)" for an option left out, unless the help says its default itself."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required:
            return text + " (required)"
        if "default" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if action.default is False:
            return text + " (default: off)"
        if action.default is None or action.default == "":
            return text + " (default: none)"
        return text + " (default: %(default)s)"


def main(argv=None):
    from . import byod as byod_defaults   # named thresholds and step defaults; imports neither torch nor onnxruntime
    fmt = _Help
    ap = argparse.ArgumentParser(prog="python -m equivtrain", description=__doc__, formatter_class=fmt)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="synthesize line-side machine sounds", formatter_class=fmt,
                       description="Synthesize clips of line-side machines and their manifest.csv.")
    g.add_argument("--out", required=True, help="folder for the clips and manifest.csv")
    g.add_argument("--per-class", type=int, default=20, help="machines per class")
    g.add_argument("--seconds", type=float, default=3.0, help="length of each recording in seconds")
    g.add_argument("--keep", type=float, default=0.0,
                   help="keep the first KEEP seconds of each clip (0: all); a recording resampled 12 semitones "
                        "up lasts half as long, so KEEP = --seconds / 2 gives every shift as many windows")
    g.add_argument("--seed", type=int, default=0, help="random seed of the machines and recordings")
    g.add_argument("--shifts", default="", help="comma-separated semitones, e.g. -12,-6,0,6,12 (default: 0 only)")
    g.add_argument("--kind", choices=["speed", "resample"], default="speed",
                   help="speed: the machine runs faster/slower; resample: the whole recording is resampled")
    g.set_defaults(run=_generate)
    sm = sub.add_parser("samples", help="write the bundled Samples/ clips and labels.csv", formatter_class=fmt,
                        description="Write the short labelled clips `make run` and the tests use.")
    sm.add_argument("--out", default="Samples", help="folder for the clips and labels.csv")
    sm.add_argument("--seed", type=int, default=7, help="random seed of the clips")
    sm.set_defaults(run=_samples)
    for name, run, text in (("models", _models, "train everything from the seed: the classifier, then `canonicalizers`"),
                             ("canonicalizers", _canonicalizers,
                              "both canonicalizers, calibration, the bundle and row (b)'s bundle for --out/classifier.onnx, then `table`")):
        m = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".", formatter_class=fmt)
        m.add_argument("--data", default="data", help="where generated clips and feature caches go")
        m.add_argument("--out", default="Models", help="the bundle folder written")
        m.add_argument("--table", default="docs/results.md", help="the results table replaces its marked section here")
        m.add_argument("--seed", type=int, default=1, help="random seed of the data and training")
        m.add_argument("--epochs", type=int, default=14, help="classifier epochs (models only)")
        m.add_argument("--canon-epochs", type=int, default=20, help="epochs of the canonicalizer with the prior")
        m.add_argument("--noprior-epochs", type=int, default=6, help="epochs of the no-prior canonicalizer "
                       "(the task-loss variant costs 3 classifier passes a window)")
        m.add_argument("--noprior-out", default="data/noprior-bundle", help="where row (b)'s bundle goes")
        m.set_defaults(run=run)
    tb = sub.add_parser("table", help="the results table of a bundle (and row (b) of a no-prior bundle) on the test "
                                      "sets, and how well each canonicalizer reads the shift", formatter_class=fmt,
                        description="The results table of the exported ONNX files on the test sets.")
    tb.add_argument("--data", default="data", help="where the generated test sets and feature caches are")
    tb.add_argument("--bundle", default="Models", help="the bundle evaluated")
    tb.add_argument("--noprior", default="data/noprior-bundle", help="row (b)'s bundle")
    tb.add_argument("--table", default="docs/results.md", help="the table replaces its marked section here")
    tb.set_defaults(run=_table)
    b = sub.add_parser(
        "byod", help="train from your own audio files (manifest CSV: path[,label])", formatter_class=fmt,
        description="Bring your own data: a bundle from the audio files a manifest CSV lists (path[,label]). The "
                    "canonicalizer is always trained, with the prior alone (no labels needed); a classifier is "
                    "trained with --train-classifier, or yours (--classifier) is copied unchanged. Files are split by "
                    f"file ({byod_defaults.VAL_SHARE:.0%} of each label held out for validation and calibration); "
                    f"silent windows (mean log-band value below {byod_defaults.features.IDLE_MEAN_LOG}) are dropped "
                    "as replay's idle gate drops them. Training runs in optimizer steps with early stopping. "
                    "Checks (printed as warnings, exit 1 with --strict): classifier validation accuracy below "
                    f"max({byod_defaults.MIN_VAL_ACCURACY}, {byod_defaults.MIN_CHANCE_FACTOR} x chance), canonicalizer "
                    f"exact shift accuracy below {byod_defaults.MIN_SHIFT_EXACT}, fewer than "
                    f"{byod_defaults.MIN_VAL_WINDOWS} validation windows or fewer than "
                    f"{byod_defaults.MIN_VAL_FILES_PER_CLASS} validation files of a class.")
    b.add_argument("--manifest", required=True, help="CSV with a path column (relative to the CSV) and optionally label")
    b.add_argument("--out", required=True, help="the bundle folder written")
    b.add_argument("--classifier", help="your frozen classifier as ONNX, copied unchanged: its input equivd's windows "
                   "[N, 1, 168, 100] and its outputs one logit per class, unless --input-spec and --label-map say otherwise")
    b.add_argument("--classes", help="comma-separated class names of --classifier's outputs, in order "
                   "(default: the manifest's labels, sorted)")
    b.add_argument("--input-spec", help="JSON file: --classifier's own input (bundle.json models.classifier.input: "
                   "kind equivd_spectrogram, log_mel or waveform; Training/README.md)")
    b.add_argument("--label-map", help='JSON file {"label": [output indices], ...}: the classes, in its order, and '
                   "which of --classifier's outputs make up each")
    b.add_argument("--activation", choices=["softmax", "sigmoid"], default="softmax",
                   help="with --label-map: softmax sums the softmax over a label's outputs, sigmoid takes the max "
                        "of their sigmoids; then the labels' scores are divided by their sum")
    b.add_argument("--train-classifier", action="store_true", help="also train a classifier (needs a label on every row)")
    b.add_argument("--steps", type=int, help=f"classifier optimizer steps (default: {byod_defaults.CLASSIFIER_EPOCHS} "
                   f"passes over the training windows, at least {byod_defaults.CLASSIFIER_FLOOR}, at most "
                   f"{byod_defaults.STEPS_CAP})")
    b.add_argument("--canon-steps", type=int, help=f"canonicalizer optimizer steps (default: {byod_defaults.CANON_EPOCHS} "
                   f"passes over the training windows, at least {byod_defaults.CANON_FLOOR}, at most "
                   f"{byod_defaults.STEPS_CAP})")
    b.add_argument("--eval-every", type=int, default=100, help="steps between evaluations on the validation split "
                   "(classifier: accuracy; canonicalizer: exact shift accuracy); the best is kept")
    b.add_argument("--patience", type=int, default=10, help="stop after this many evaluations without improvement")
    b.add_argument("--strict", action="store_true", help="exit 1 when a check fails (before training when the "
                   "split is too small; after writing the bundle when an accuracy is poor)")
    b.add_argument("--resampled-copies", type=int, default=byod_defaults.RESAMPLED_COPIES,
                   help="resampled copies of each recording (random shifts, pitch and tempo together) the canonicalizer "
                        "also trains on, and early stopping scores; 0: translations of the spectrogram only")
    b.add_argument("--fixed-part-steps", type=int, default=byod_defaults.FIXED_PART_STEPS,
                   help="training steps of the separator and of FixedPose (mode partial), built when the manifest's "
                        "machine column names recordings of one machine at several speeds")
    b.add_argument("--seed", type=int, default=0, help="random seed of the split and training")
    b.set_defaults(run=_byod)
    r = sub.add_parser("real-table", help="the results on real recordings through `equivd replay`", formatter_class=fmt,
                       description="Rows (a) classifier alone, (c) + canonicalizer, (d) + top-3 fallback and (o) the "
                                   "ceiling, on the nominal held-out recordings and at every resample shift, for each "
                                   "bundle (equivtrain.real_table).")
    r.add_argument("--recordings", default="data/recordings/instruments", help="the folder equivtrain.recordings wrote")
    r.add_argument("--bundle", action="append", required=True, help="NAME=FOLDER, once per bundle")
    r.add_argument("--equivd", default=".build/release/equivd", help="the equivd binary that replays")
    r.add_argument("--out", default="docs/results.md", help="the table replaces its marked section here")
    r.add_argument("--work", default="data/real-table", help="per-run reports")
    r.set_defaults(run=_real_table)
    t = sub.add_parser("table-swift", help="the results table again through `equivd replay`", formatter_class=fmt,
                       description="The results table again, through `equivd replay`, into docs/results.md.")
    t.add_argument("--data", default="data", help="where the generated test sets are")
    t.add_argument("--bundle", default="Models", help="the bundle replayed")
    t.add_argument("--equivd", default=".build/release/equivd", help="the equivd binary")
    t.add_argument("--results", default="docs/results.md", help="where the Python figures are read")
    t.add_argument("--out", default="docs/results.md", help="the table replaces its marked section here")
    t.add_argument("--work", default="data/table-swift", help="manifests and per-run reports")
    t.add_argument("--rows", help="row letters to rerun, e.g. p; the other rows' lines already there are kept "
                   "(default: all rows)")
    t.set_defaults(run=_table_swift)
    p = sub.add_parser("partial-table", help="how far translating only the rotation-locked part raises the speed "
                       "ceiling", formatter_class=fmt, description="Rows with the true shift and the fixed part left in "
                       "place, F̂ from the generator, from several speeds, or from a separator (equivtrain.partial).")
    p.add_argument("--bundle", default="Models", help="the bundle whose frozen classifier is measured")
    p.add_argument("--per-class", type=int, default=8, help="paired test machines per class")
    p.add_argument("--steps", type=int, default=3000, help="training steps of the separator and of FixedPose")
    p.add_argument("--out", default="docs/results.md", help="the table replaces its marked section here")
    p.add_argument("--work", default="data/partial", help="rendered clips")
    p.set_defaults(run=_partial_table)
    fp = sub.add_parser("fixed-part", help="add the separator and FixedPose (mode partial) to a bundle",
                        formatter_class=fmt, description="Trains the separator and FixedPose on generator parts of "
                        "training-seed machines at random speeds, no class labels, and adds them to the bundle "
                        "(equivtrain.partial; `canonicalizers` and `models` end so).")
    fp.add_argument("--bundle", default="Models", help="the bundle folder they are added to")
    fp.add_argument("--per-class", type=int, default=60, help="training machines per class (two clips each)")
    fp.add_argument("--steps", type=int, default=3000, help="training steps of each")
    fp.add_argument("--work", default="data/partial", help="rendered training clips")
    fp.set_defaults(run=_fixed_part)
    args = ap.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
