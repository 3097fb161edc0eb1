"""The frozen classifier read back from ONNX into PyTorch (for training against it) computes what
the ONNX file computes, per onnxruntime."""

import pathlib

import numpy as np
import onnxruntime as ort
import torch

from equivtrain import models, synth

BUNDLE = pathlib.Path(__file__).resolve().parents[2] / "Models"


def test_classifier_from_onnx_matches_onnxruntime():
    path = BUNDLE / "classifier.onnx"
    model = models.classifier_from_onnx(path, len(synth.CLASSES))
    x = np.random.default_rng(0).uniform(-14, -2, (3, 1, models.BINS, 100)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4), np.abs(got - want).max()
