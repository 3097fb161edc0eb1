"""Fetches Basic Pitch — Spotify's polyphonic note transcriber (Bittner et al., ICASSP 2022), as
the `basic-pitch` wheel ships it (Apache-2.0) — already exported to ONNX by its authors (tf2onnx).
Nobody here wrote, trained or exported it; neither the wheel nor the model is committed: this
script copies it out at set-up and checks its SHA-256.

  .venv/bin/python scripts/fetch-basic-pitch.py [--out data/pretrained]

It writes basic-pitch.onnx: input `serving_default_input_2:0` [batch, 43844, 1] (about 2 s of
22 050 Hz audio), three outputs [batch, 172, 88 or 264] (note, onset and contour posteriorgrams).
Inside: a constant-Q transform written as Conv layers (1 × 256 kernels at strides 1 to 256, and
1 × 256 low-pass filters at stride 2 between octaves), TensorFlow's normalised log (ReduceMin,
ReduceMax, and div_no_nan as Equal and Where), then a small 2-D CNN (5 × 5 and 7 × 7 kernels at
stride (1, 3), a 3 × 39 kernel along frequency), with Pad, Concat, Transpose and Sigmoid.
"""

import argparse
import hashlib
import pathlib
import subprocess
import sys
import tempfile
import zipfile

WHEEL = "basic-pitch==0.4.0"
MEMBER = "basic_pitch/saved_models/icassp_2022/nmp.onnx"
SHA256 = "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/pretrained", help="folder for basic-pitch.onnx")
    args = ap.parse_args()
    target = pathlib.Path(args.out) / "basic-pitch.onnx"
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL], check=True)
        wheel = next(pathlib.Path(tmp).glob("basic_pitch-*.whl"))
        with zipfile.ZipFile(wheel) as w:
            model = w.read(MEMBER)
    found = hashlib.sha256(model).hexdigest()
    if found != SHA256:
        sys.exit(f"{WHEEL} {MEMBER}: SHA-256 {found}, expected {SHA256}: the wheel changed")
    partial = target.with_suffix(".partial")  # a file only once whole: a rerun skips an existing one
    partial.write_bytes(model)
    partial.rename(target)
    print(f"{target}: Basic Pitch, sha256 {SHA256[:12]}")


if __name__ == "__main__":
    main()
