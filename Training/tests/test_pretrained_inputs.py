"""A pretrained classifier's own input (equivtrain.pretrained), the reference the service is
checked against: patches sit one per equivd window, centred on its centre, zeros outside the clip;
the log-mel features are torchaudio's MelSpectrogram (compared when torchaudio is installed); the
label map combines outputs by softmax-sum or sigmoid-max, then renormalizes."""

import itertools
import json

import numpy as np
import pytest

from equivtrain import pretrained

LOG_MEL = {"kind": "log_mel", "sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop_length": 160,
           "n_mels": 64, "f_min": 125.0, "f_max": 7500.0, "mel_scale": "htk", "norm": "none", "power": 1.0,
           "center": False, "log_offset": 0.001, "log": "ln", "frames": 96, "layout": "frames_mels",
           "shape": [1, 1, 96, 64]}


def test_equivd_windows_span_24032_samples_one_every_8000():
    assert pretrained.WINDOW_SPAN == 24032 and pretrained.WINDOW_STEP == 8000
    assert list(pretrained.window_centres([0, 1, 3])) == [12016, 20016, 36016]


def test_a_waveform_patch_is_the_audio_centred_on_the_window_zeros_outside():
    audio = np.arange(1, 40001, dtype=np.float32)
    spec = {"kind": "waveform", "sample_rate": 16000, "samples": 15600, "shape": [1, 15600]}
    (c0, c3) = pretrained.window_centres([0, 3])
    patch = pretrained.waveform_patch(audio, c0, spec)
    assert patch.shape == (1, 15600)
    np.testing.assert_array_equal(patch[0], audio[c0 - 7800:c0 + 7800])
    late = pretrained.waveform_patch(audio, c3, spec)[0]   # 36016 ± 7800 runs past the clip's 40 000
    np.testing.assert_array_equal(late[:40000 - (c3 - 7800)], audio[c3 - 7800:])
    assert not late[40000 - (c3 - 7800):].any()


def test_a_log_mel_patch_has_the_models_frames_and_layout():
    audio = np.random.default_rng(0).normal(0, 0.1, 24032).astype(np.float32)   # one window: a 1.5 s clip
    patch = pretrained.log_mel_patch(audio, pretrained.window_centres([0])[0], LOG_MEL)
    assert patch.shape == (1, 1, 96, 64) and patch.dtype == np.float32
    # center false: 95 hops + one 512-sample frame, centred on sample 12 016: samples 4160 … 19 872
    want = pretrained.log_mel(audio[12016 - 7856:12016 + 7856], LOG_MEL)
    np.testing.assert_allclose(patch[0, 0], want, rtol=1e-6)
    transposed = pretrained.log_mel_patch(audio, 12016, dict(LOG_MEL, layout="mels_frames", shape=[1, 1, 64, 96]))
    np.testing.assert_array_equal(transposed[0, 0], patch[0, 0].T)
    centred = pretrained.log_mel_patch(audio, 12016, dict(LOG_MEL, center=True))
    assert centred.shape == (1, 1, 96, 64)


def test_log_mel_is_torchaudios_mel_spectrogram():
    torch = pytest.importorskip("torch")
    torchaudio = pytest.importorskip("torchaudio", reason="torchaudio (Debian's python3-torchaudio) not installed")
    x = np.random.default_rng(1).normal(0, 0.1, 20000).astype(np.float32)
    for scale, norm, center, power, log in itertools.product(("htk", "slaney"), ("none", "slaney"), (False, True),
                                                             (1.0, 2.0), ("ln", "log10")):
        spec = dict(LOG_MEL, mel_scale=scale, norm=norm, center=center, power=power, log=log)
        mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=16000, n_fft=512, win_length=400, hop_length=160, f_min=125.0, f_max=7500.0, n_mels=64,
            power=power, center=center, norm=None if norm == "none" else "slaney", mel_scale=scale)(torch.from_numpy(x))
        want = (torch.log if log == "ln" else torch.log10)(mel + 0.001).numpy().T
        got = pretrained.log_mel(x, spec)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4)   # torchaudio computes in float32


def test_the_label_map_combines_softmax_by_sum_and_sigmoid_by_max():
    raw = np.array([[0.0, 1.0, 2.0, -1.0]])
    output = {"activation": "softmax", "classes": {"b": [2], "a": [0, 1]}}
    p = np.exp(raw[0]) / np.exp(raw[0]).sum()
    want = np.array([p[2], p[0] + p[1]])
    np.testing.assert_allclose(pretrained.combine(raw, output, ["b", "a"])[0], want / want.sum())
    output = {"activation": "sigmoid", "classes": {"b": [2], "a": [0, 1, 3]}}
    s = 1 / (1 + np.exp(-raw[0]))
    want = np.array([s[2], s[1]])
    np.testing.assert_allclose(pretrained.combine(raw, output, ["b", "a"])[0], want / want.sum())


def test_an_input_spec_missing_a_field_or_with_a_bad_choice_is_refused(tmp_path):
    path = tmp_path / "input.json"
    path.write_text(json.dumps({k: v for k, v in LOG_MEL.items() if k != "hop_length"}))
    with pytest.raises(ValueError, match="needs hop_length"):
        pretrained.load_input(path)
    path.write_text(json.dumps(dict(LOG_MEL, mel_scale="bark")))
    with pytest.raises(ValueError, match="mel_scale must be one of htk, slaney"):
        pretrained.load_input(path)
    path.write_text(json.dumps(dict(LOG_MEL, shape=[1, 1, 96, 65])))
    with pytest.raises(ValueError, match="shape"):
        pretrained.load_input(path)
    path.write_text(json.dumps(LOG_MEL))
    assert pretrained.load_input(path) == LOG_MEL
