"""python -m equivtrain COMMAND …   (Training/README.md)"""

import argparse
import csv
import pathlib
import sys

import numpy as np
import scipy.io.wavfile

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
    args = ap.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
