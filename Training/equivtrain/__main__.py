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
               train_classifier=a.train_classifier, epochs=a.epochs, canon_epochs=a.canon_epochs, seed=a.seed)


def _table_swift(a):
    from . import swift_table
    swift_table.run(a.data, a.bundle, a.equivd, a.results, a.out, a.work)


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
    g.set_defaults(run=_generate)
    sm = sub.add_parser("samples", help="write the bundled Samples/ clips and labels.csv")
    sm.add_argument("--out", default="Samples")
    sm.add_argument("--seed", type=int, default=7)
    sm.set_defaults(run=_samples)
    for name, run, text in (("models", _models, "train everything from the seed: the classifier, then `canonicalizers`"),
                             ("canonicalizers", _canonicalizers,
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
    tb.set_defaults(run=_table)
    b = sub.add_parser("byod", help="train from your own audio files (manifest CSV: path[,label])")
    b.add_argument("--manifest", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--classifier", help="your frozen classifier as ONNX (input [N, 1, 168, 100], output logits)")
    b.add_argument("--classes", help="comma-separated class names of --classifier's outputs, in order")
    b.add_argument("--train-classifier", action="store_true", help="also train a classifier (needs labels)")
    b.add_argument("--epochs", type=int, default=14)
    b.add_argument("--canon-epochs", type=int, default=20)
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(run=_byod)
    t = sub.add_parser("table-swift", help="the results table again through `equivd replay`")
    t.add_argument("--data", default="data")
    t.add_argument("--bundle", default="Models")
    t.add_argument("--equivd", default=".build/release/equivd")
    t.add_argument("--results", default="docs/results.md", help="where the Python figures are read")
    t.add_argument("--out", default="docs/results.md", help="the table replaces its marked section here")
    t.add_argument("--work", default="data/table-swift", help="manifests and per-run reports")
    t.set_defaults(run=_table_swift)
    args = ap.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
