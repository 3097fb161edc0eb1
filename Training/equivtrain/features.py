"""Features from equivd itself (`equivd features --out-dir`): one implementation of the front end,
so what the models are trained on is exactly what the service computes."""

import os
import pathlib
import subprocess
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]

# A window whose mean log-band value is below this is silence: replay publishes it as `idle` and
# never classifies it (Sources/EquivCore/Recognizer.swift, `Recognizer.Thresholds.idleMeanLog`,
# ln 1e-5; configurable there as `model.idle_mean_log`). Training drops such windows by the same rule.
IDLE_MEAN_LOG = -11.5


def equivd_binary():
    """$EQUIVD, else the release build, else the debug build."""
    if "EQUIVD" in os.environ:
        return os.environ["EQUIVD"]
    for build in ("release", "debug"):
        path = ROOT / ".build" / build / "equivd"
        if path.exists():
            return str(path)
    raise FileNotFoundError("no equivd binary: run `swift build -c release` or set EQUIVD")


def active(windows):
    """Which windows (an array [N, bins, frames] or [N, 1, bins, frames]) replay would classify:
    those whose mean log-band value is not below IDLE_MEAN_LOG (the mean in float64)."""
    windows = np.asarray(windows)
    if len(windows) == 0:
        return np.zeros(0, dtype=bool)
    return windows.reshape(len(windows), -1).mean(axis=1, dtype=np.float64) >= IDLE_MEAN_LOG


def windows(paths, chunk=25, progress=None):
    """Spectrogram windows of each audio file, as float32 arrays (windows, bins, frames), in order.
    equivd runs on `chunk` files at a time; `progress` (an `equivtrain.progress.Progress` over the
    files, or None) is advanced after each run. A file too short for one window gives (0, bins,
    frames) from an equivd that does not pad short files yet."""
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
            for p in batch:
                npy = pathlib.Path(tmp) / f"{pathlib.Path(p).stem}.npy"
                result.append(np.load(npy))
                npy.unlink()
            if progress is not None:
                progress.update(len(batch))
    return result
