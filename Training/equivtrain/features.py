"""Features from equivd itself (`equivd features --out-dir`): one implementation of the front end,
so what the models are trained on is exactly what the service computes."""

import os
import pathlib
import subprocess
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]


def equivd_binary():
    """$EQUIVD, else the release build, else the debug build."""
    if "EQUIVD" in os.environ:
        return os.environ["EQUIVD"]
    for build in ("release", "debug"):
        path = ROOT / ".build" / build / "equivd"
        if path.exists():
            return str(path)
    raise FileNotFoundError("no equivd binary: run `swift build -c release` or set EQUIVD")


def windows(paths, chunk=500):
    """Spectrogram windows of each audio file, as float32 arrays (windows, bins, frames), in order."""
    paths = [str(p) for p in paths]
    names = [pathlib.Path(p).stem for p in paths]
    if len(set(names)) != len(names):
        raise ValueError("audio files must have distinct names (their .npy files share one folder)")
    result = []
    with tempfile.TemporaryDirectory() as tmp:
        for start in range(0, len(paths), chunk):
            batch = paths[start:start + chunk]
            done = subprocess.run([equivd_binary(), "features", *batch, "--out-dir", tmp],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"equivd features failed: {done.stderr.strip()}")
            result += [np.load(pathlib.Path(tmp) / f"{pathlib.Path(p).stem}.npy") for p in batch]
    return result
