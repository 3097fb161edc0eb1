"""`equivd features` checked from outside: its .npy files read back with numpy, and its
spectrogram against the independent numpy/scipy implementation in bench/frontend_reference.py."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.io.wavfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from frontend_reference import FrontEnd  # noqa: E402

EQUIVD = os.environ.get("EQUIVD", str(ROOT / ".build/debug/equivd"))
RATE = 16000


def features(path, out):
    subprocess.run([EQUIVD, "features", str(path), "--out", str(out)], check=True, capture_output=True)
    return np.load(out)


def machine_like(seconds, seed):
    """Harmonics of 137 Hz with a slow level change, over white noise: every band well above
    the float32 rounding floor, so a relative comparison is meaningful everywhere."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(0.3 / h * np.sin(2 * np.pi * 137 * h * t + h) for h in range(1, 12))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t) ** 2
    x += 0.01 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def test_matches_numpy_reference_to_1e4_relative(tmp_path):
    x = machine_like(6.0, seed=1)
    wav = tmp_path / "machine.wav"
    scipy.io.wavfile.write(wav, RATE, x)  # float32 WAV: both sides read identical samples
    got = features(wav, tmp_path / "machine.npy")
    want = FrontEnd().windows(x.astype(np.float64))
    assert got.dtype == np.float32
    assert got.shape == want.shape == (9, 168, 100)  # 549 frames of 6 s
    relative = np.abs(got - want) / np.abs(want)
    print(f"max relative error {relative.max():.2e}, median {np.median(relative):.2e}")
    assert relative.max() <= 1e-4


def test_npy_shape_and_values_for_a_44k1_stereo_tone(tmp_path):
    rate, seconds, freq = 44100, 3.0, 440.0
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    wav = tmp_path / "tone.wav"
    scipy.io.wavfile.write(wav, rate, (np.stack([tone, tone], axis=1) * 32767).astype(np.int16))
    got = features(wav, tmp_path / "tone.npy")
    fe = FrontEnd()
    frames = 1 + (int(seconds * RATE) - 8192) // 160  # resampled to 16 kHz
    assert got.shape == (1 + (frames - 100) // 50, 168, 100)
    assert np.isfinite(got).all()
    spectrum = got.mean(axis=(0, 2))
    peak = int(spectrum.argmax())
    assert peak == round(24 * np.log2(freq / 60.0))
    # Calibrated bands: a 0.5-amplitude tone near a band centre reads about ln(0.5).
    assert abs(spectrum[peak] - np.log(0.5)) < 0.05
    assert fe.centers[peak + 1] == pytest.approx(freq, rel=0.03)


@pytest.mark.parametrize("content,reason", [(None, "No such file"), (b"", "empty"),
                                            (b"plain text\n", "not an audio file")])
def test_unreadable_input_exits_nonzero_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    result = subprocess.run([EQUIVD, "features", str(path), "--out", str(tmp_path / "x.npy")],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert str(path) in result.stderr and reason in result.stderr


def test_summary_reports_a_bad_file_and_goes_on(tmp_path):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    scipy.io.wavfile.write(good, RATE, machine_like(2.0, seed=2))
    bad.write_bytes(b"RIFF....WAVEjunk")
    result = subprocess.run([EQUIVD, "features", str(bad), str(good)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"error: {bad}:" in result.stderr
    assert "good.wav" in result.stdout and "total: 1 files" in result.stdout
