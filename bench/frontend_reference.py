"""Independent numpy/scipy implementation of equivd's front end (docs/frontend.md).

Same definition, written separately from the Swift code and computed in float64: periodic Hann
STFT (frame t = samples [t*hop, t*hop + n_fft)), |rfft|, triangular log-frequency filterbank
calibrated so that a unit sinusoid at a band's centre reads 1.0, ln(band + floor), windows of
`window_frames` frames every `window_step_frames`.

Used by the reference test (Tests/python) and as the peer in bench/frontend_bench.py.
    python3 bench/frontend_reference.py FILE.wav [--out windows.npy]
Input must already be mono at the front end's rate (no resampling here).
"""

import argparse
import sys
import time

import numpy as np
import scipy.io.wavfile
import scipy.signal
import scipy.sparse

DEFAULTS = dict(sample_rate=16000, fft_size=8192, hop_length=160, bins_per_semitone=2, fmin=60.0,
                bin_count=168, window_frames=100, window_step_frames=50, log_floor=1e-6)


class FrontEnd:
    def __init__(self, **overrides):
        p = dict(DEFAULTS, **overrides)
        self.p = p
        n = p["fft_size"]
        self.window = scipy.signal.get_window("hann", n)  # periodic
        per_octave = 12 * p["bins_per_semitone"]
        self.centers = p["fmin"] * 2.0 ** (np.arange(-1, p["bin_count"] + 1) / per_octave)
        freqs = np.arange(n // 2 + 1) * p["sample_rate"] / n
        bin_hz = p["sample_rate"] / n
        weights = np.zeros((p["bin_count"], n // 2 + 1))
        for k in range(p["bin_count"]):
            lo, c, hi = self.centers[k], self.centers[k + 1], self.centers[k + 2]
            below, above = max(c - lo, bin_hz), max(hi - c, bin_hz)
            w = np.where(freqs < c, 1 - (c - freqs) / below, 1 - (freqs - c) / above)
            weights[k] = np.clip(w, 0, None)
        # Calibrate: a unit cosine at each band's centre must read exactly 1.0 in that band.
        t = np.arange(n)
        for k in range(p["bin_count"]):
            tone = np.cos(2 * np.pi * self.centers[k + 1] / p["sample_rate"] * t)
            weights[k] /= weights[k] @ np.abs(np.fft.rfft(tone * self.window))
        self.filterbank = scipy.sparse.csr_matrix(weights)

    def frames(self, x, chunk=2048):
        """Log-band frames, shape (frames, bins)."""
        p = self.p
        n, hop = p["fft_size"], p["hop_length"]
        count = 1 + (len(x) - n) // hop if len(x) >= n else 0
        out = np.empty((count, p["bin_count"]))
        view = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]
        for start in range(0, count, chunk):
            block = view[start:start + chunk] * self.window
            mags = np.abs(np.fft.rfft(block, axis=1))
            out[start:start + chunk] = (self.filterbank @ mags.T).T
        return np.log(out + p["log_floor"])

    def windows(self, x):
        """Classifier windows, shape (windows, bins, frames)."""
        f = self.frames(np.asarray(x, dtype=np.float64))
        width, step = self.p["window_frames"], self.p["window_step_frames"]
        starts = range(0, len(f) - width + 1, step)
        return np.stack([f[s:s + width].T for s in starts]) if len(f) >= width else \
            np.empty((0, self.p["bin_count"], width))


def read_mono(path, sample_rate):
    rate, data = scipy.io.wavfile.read(path)
    if rate != sample_rate:
        sys.exit(f"{path}: {rate} Hz, the reference needs {sample_rate} Hz (it does not resample)")
    if data.dtype == np.int16:
        data = data / 32768.0
    elif data.dtype == np.int32:
        data = data / 2147483648.0
    data = np.asarray(data, dtype=np.float64)
    return data.mean(axis=1) if data.ndim == 2 else data


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--out", help="write windows as float32 .npy")
    args = ap.parse_args()
    started = time.perf_counter()
    fe = FrontEnd()
    x = read_mono(args.file, fe.p["sample_rate"])
    w = fe.windows(x)
    elapsed = time.perf_counter() - started
    if args.out:
        np.save(args.out, w.astype(np.float32))
    duration = len(x) / fe.p["sample_rate"]
    print(f"{args.file}: {w.shape[0]} windows, {duration:.1f} s of audio in {elapsed:.3f} s "
          f"({duration / elapsed:.0f} x realtime)")


if __name__ == "__main__":
    main()
