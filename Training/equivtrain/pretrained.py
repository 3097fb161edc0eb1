"""A pretrained classifier with an input of its own (bundle.json `models.classifier.input`) and an
output map onto the bundle's labels (`models.classifier.output`): Training/README.md, "Bring your
own data". This is the reference the service's implementation is checked against, so each step is
spelled out: where a patch sits, how its features are computed, how outputs become label scores.

Where: one patch per equivd window. Window i's audio span is WINDOW_SPAN samples starting at
i · WINDOW_STEP; its centre is i · WINDOW_STEP + WINDOW_SPAN // 2. A patch is the stretch of the
clip centred there, samples outside the clip being zeros (silence, as equivd pads a short clip).

- `log_mel`: the stretch is (frames − 1) · hop_length + n_fft samples long with center false, and
  (frames − 1) · hop_length with center true (torchaudio then reflect-pads it by n_fft // 2 each
  side); either way torchaudio's MelSpectrogram of it has exactly `frames` frames. Features are
  log(mel + log_offset) (natural log, or log10), laid out frames × mels or mels × frames.
- `waveform`: the stretch is `samples` samples long.
- `equivd_spectrogram`: the window itself (equivd's own front end), as for the default bundle.
"""

import json
import math
import pathlib
import subprocess
import tempfile

import numpy as np
import scipy.io.wavfile
import scipy.signal

# equivd's windows (`equivd features --parameters`): 100 frames of hop 160 (10 ms at 16 kHz),
# one every 50 frames, each frame an 8192-sample FFT.
WINDOW_STEP = 50 * 160                 # 8 000 samples between window starts
WINDOW_SPAN = (100 - 1) * 160 + 8192   # 24 032 samples of audio in one window

KINDS = {
    "equivd_spectrogram": (),
    "log_mel": ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max", "mel_scale",
                "norm", "power", "center", "log_offset", "log", "frames", "layout", "shape"),
    "waveform": ("sample_rate", "samples", "shape"),
}
CHOICES = {"mel_scale": ("htk", "slaney"), "norm": ("none", "slaney"), "log": ("ln", "log10"),
           "layout": ("frames_mels", "mels_frames")}
ACTIVATIONS = ("softmax", "sigmoid")


def load_input(path):
    """The `input` object from a JSON file, checked: a known kind with all its fields."""
    spec = json.loads(pathlib.Path(path).read_text())
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind not in KINDS:
        raise ValueError(f"{path}: input kind must be one of {', '.join(KINDS)}, not {kind!r}")
    missing = [k for k in KINDS[kind] if k not in spec]
    if missing:
        raise ValueError(f"{path}: a {kind} input needs {', '.join(missing)}")
    for key, allowed in CHOICES.items():
        if key in KINDS[kind] and spec[key] not in allowed:
            raise ValueError(f"{path}: {key} must be one of {', '.join(allowed)}, not {spec[key]!r}")
    if kind != "equivd_spectrogram":
        size = spec["frames"] * spec["n_mels"] if kind == "log_mel" else spec["samples"]
        if math.prod(spec["shape"]) != size or spec["shape"][0] != 1:
            raise ValueError(f"{path}: shape {spec['shape']} must be [1, …] holding {size} values")
    return spec


def load_label_map(path, activation="softmax"):
    """`{"label": [output indices]}` from a JSON file: the labels in the file's order and the
    `output` object."""
    classes = json.loads(pathlib.Path(path).read_text())
    if not isinstance(classes, dict) or not classes:
        raise ValueError(f"{path}: a label map is a JSON object {{\"label\": [output indices], …}}")
    for label, indices in classes.items():
        if not isinstance(indices, list) or not indices or not all(isinstance(i, int) and i >= 0 for i in indices):
            raise ValueError(f"{path}: {label!r} must map to a non-empty list of output indices")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}")
    return list(classes), {"activation": activation, "classes": classes}


def combine(raw, output, classes):
    """Label scores [N, labels] from the model's raw outputs [N, M]. softmax: the softmax over all M
    outputs, summed over each label's indices; sigmoid: the sigmoid of each output, the max over
    each label's indices. Then the labels' scores divided by their sum. Without an output map
    (`output` None): the softmax of the outputs, one per label."""
    raw = np.asarray(raw, dtype=np.float64)
    if output is None:
        p = np.exp(raw - raw.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)
    if output["activation"] == "softmax":
        p = np.exp(raw - raw.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        scores = np.stack([p[:, output["classes"][c]].sum(1) for c in classes], axis=1)
    else:
        s = 1.0 / (1.0 + np.exp(-raw))
        scores = np.stack([s[:, output["classes"][c]].max(1) for c in classes], axis=1)
    return scores / scores.sum(1, keepdims=True)


def read_audio(path, rate):
    """A file as mono float32 at `rate`: WAV through scipy (integers scaled to [−1, 1), channels
    averaged), other formats converted to WAV by sox first; another rate resampled with scipy's
    resample_poly (equivd uses libsoxr: not bit-identical)."""
    path = pathlib.Path(path)
    if path.suffix.lower() != ".wav":
        with tempfile.TemporaryDirectory() as tmp:
            wav = pathlib.Path(tmp) / "audio.wav"
            subprocess.run(["sox", str(path), "-e", "floating-point", "-b", "32", str(wav)], check=True)
            return read_audio(wav, rate)
    file_rate, x = scipy.io.wavfile.read(path)
    if x.dtype == np.uint8:
        x = (x.astype(np.float64) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(-np.iinfo(x.dtype).min)
    x = x.astype(np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if file_rate != rate:
        g = math.gcd(file_rate, rate)
        x = scipy.signal.resample_poly(x, rate // g, file_rate // g)
    return x.astype(np.float32)


def window_centres(window_indices):
    return np.asarray(window_indices, dtype=np.int64) * WINDOW_STEP + WINDOW_SPAN // 2


def stretch(audio, centre, length):
    """`length` samples of `audio` centred on sample `centre` (starting at centre − length // 2),
    zeros outside the clip."""
    start = int(centre) - length // 2
    out = np.zeros(length, dtype=np.float64)
    lo, hi = max(start, 0), min(start + length, len(audio))
    if hi > lo:
        out[lo - start:hi - start] = audio[lo:hi]
    return out


def _hz_to_mel(f, scale):
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f = np.asarray(f, dtype=np.float64)   # slaney: linear below 1 kHz, logarithmic above
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (math.log(6.4) / 27.0), f / (200.0 / 3))


def _mel_to_hz(m, scale):
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(m >= 15.0, 1000.0 * np.exp((math.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def mel_filterbank(spec):
    """[n_fft // 2 + 1, n_mels] triangular filters as torchaudio.functional.melscale_fbanks makes
    them: FFT bin frequencies linspace(0, sample_rate // 2), n_mels + 2 points evenly spaced on the
    mel scale from f_min to f_max, norm "slaney" scaling each filter by 2 / (its upper − lower edge in Hz)."""
    freqs = np.linspace(0, spec["sample_rate"] // 2, spec["n_fft"] // 2 + 1)
    m = np.linspace(_hz_to_mel(spec["f_min"], spec["mel_scale"]), _hz_to_mel(spec["f_max"], spec["mel_scale"]),
                    spec["n_mels"] + 2)
    f = _mel_to_hz(m, spec["mel_scale"])
    slopes = f[None, :] - freqs[:, None]                 # [bins, n_mels + 2]
    down = -slopes[:, :-2] / np.diff(f)[:-1]
    up = slopes[:, 2:] / np.diff(f)[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    if spec["norm"] == "slaney":
        fb *= 2.0 / (f[2:] - f[:-2])
    return fb


def log_mel(segment, spec):
    """log(mel + log_offset) [frames, n_mels] of `segment` as torchaudio's MelSpectrogram computes
    the mel part: a periodic Hann window of win_length centred in n_fft, reflect padding of
    n_fft // 2 each side when center, |rfft|^power, the filterbank above."""
    n_fft, hop, win = spec["n_fft"], spec["hop_length"], spec["win_length"]
    x = np.asarray(segment, dtype=np.float64)
    if spec["center"]:
        x = np.pad(x, n_fft // 2, mode="reflect")
    count = 1 + (len(x) - n_fft) // hop
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left:left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = x[np.arange(count)[:, None] * hop + np.arange(n_fft)[None, :]] * window
    power = np.abs(np.fft.rfft(frames, axis=1)) ** spec["power"]
    mel = power @ mel_filterbank(spec)
    return (np.log if spec["log"] == "ln" else np.log10)(mel + spec["log_offset"])


def log_mel_patch(audio, centre, spec):
    """The log-mel patch of the window centred on `centre`, in the model's input shape."""
    length = (spec["frames"] - 1) * spec["hop_length"] + (0 if spec["center"] else spec["n_fft"])
    patch = log_mel(stretch(audio, centre, length), spec)
    assert patch.shape == (spec["frames"], spec["n_mels"]), patch.shape
    if spec["layout"] == "mels_frames":
        patch = patch.T
    return patch.reshape(spec["shape"]).astype(np.float32)


def waveform_patch(audio, centre, spec):
    """The `samples` samples centred on `centre`, in the model's input shape."""
    return stretch(audio, centre, spec["samples"]).reshape(spec["shape"]).astype(np.float32)


PATCHES = {"log_mel": log_mel_patch, "waveform": waveform_patch}


def classifier_scores(model, spec, output, classes, clips, threads=1, progress=None):
    """Label scores [windows, labels] of an ONNX classifier with a `log_mel` or `waveform` input
    (onnxruntime, one patch a run, in the model's own input shape) on `clips`: (audio path,
    window indices) pairs, the windows in that order. `progress` advances one a clip."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    patch = PATCHES[spec["kind"]]
    raw = []
    for path, indices in clips:
        audio = read_audio(path, spec["sample_rate"])
        for centre in window_centres(indices):
            raw.append(np.asarray(session.run(None, {name: patch(audio, centre, spec)})[0]).reshape(-1))
        if progress is not None:
            progress.update(1)
    if not raw:
        return np.zeros((0, len(classes)))
    return combine(np.stack(raw), output, classes)


def output_width(model, spec):
    """How many outputs the ONNX classifier gives for one input of `spec` (checked against the label map)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    shape = [1, 1, 168, 100] if spec is None or spec["kind"] == "equivd_spectrogram" else spec["shape"]
    out = session.run(None, {session.get_inputs()[0].name: np.zeros(shape, dtype=np.float32)})[0]
    return int(np.asarray(out).reshape(1, -1).shape[1])
