"""The model bundle (docs/architecture.md §4): classifier.onnx, canonicalizer.onnx and bundle.json with the
class names, the front end's parameters (asked of equivd itself), the shift range, calibrated
thresholds and the ONNX files' SHA-256."""

import hashlib
import json
import pathlib
import shutil
import subprocess

import numpy as np
import onnxruntime as ort
import torch

from . import features
from .models import BINS, REFERENCE_BIN, SHIFT_RANGE, translate

FORMAT = 1


def export(model, path, output_name, frames=100):
    """torch.onnx.export of a model of windows [N, 1, BINS, frames] with a dynamic batch; checked
    against onnxruntime on random input."""
    model.eval()
    x = torch.randn(2, 1, BINS, frames)
    torch.onnx.export(model, x, path, opset_version=13, input_names=["x"], output_names=[output_name],
                      dynamic_axes={"x": {0: "batch"}, output_name: {0: "batch"}})
    model.eval()  # torch 1.13 can leave modules in training mode after export (docs/architecture.md §7)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise RuntimeError(f"{path}: onnxruntime disagrees with torch (max diff {np.abs(got - want).max()})")


def calibrate(classify, shift_logits, X, rng, fallback_share=0.25, abstain_share=0.05, classifier_p=None):
    """Thresholds from validation windows X moved by random shifts (the group action): the
    canonicalizer max-p below which the top-K fallback runs (the `fallback_share` least confident
    windows), and the classifier max-p below which a window is published as uncertain.
    `classify` and `shift_logits` map float32 windows [N, 1, F, T] to class probabilities and
    shift logits (a torch model or an ONNX file behind them). A classifier with an input of its own
    (log-mel, waveform) cannot run on translated windows: give `classify=None` and its max-p on the
    calibration clips at nominal speed as `classifier_p` (`pretrained.classifier_max_p`).
    `calibration` records the shift figures: exact, and within one bin."""
    j = rng.integers(-SHIFT_RANGE, SHIFT_RANGE + 1, len(X))
    with torch.no_grad():
        shifted = translate(torch.from_numpy(X), torch.from_numpy(j)).numpy()
    logits = shift_logits(shifted)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    k = p.argmax(1) - SHIFT_RANGE
    with torch.no_grad():
        canonical = translate(torch.from_numpy(shifted), -torch.from_numpy(k)).numpy()
    classifier_p = classify(canonical).max(1) if classify is not None else np.asarray(classifier_p)
    return {
        "canonicalizer_min_p": float(np.quantile(p.max(1), fallback_share)),
        "top_k": 3,
        "classifier_min_p": float(np.quantile(classifier_p, abstain_share)),
        "calibration": {
            "windows": int(len(X)),
            "fallback_share": fallback_share,
            "abstain_share": abstain_share,
            "shift_accuracy": float(np.mean(k == j)),
            "shift_within_one_bin": float(np.mean(np.abs(k - j) <= 1)),
        },
    }


def torch_function(model, softmax):
    """A torch model as a numpy function over batches of windows."""
    def run(X, batch=256):
        out = []
        with torch.no_grad():
            for start in range(0, len(X), batch):
                y = model(torch.from_numpy(X[start:start + batch]))
                out.append((torch.softmax(y, dim=1) if softmax else y).numpy())
        return np.concatenate(out)
    return run


def onnx_function(path, softmax, threads=0):
    """An ONNX model (input [N, 1, F, T]) as a numpy function, through onnxruntime on `threads`
    intra-op threads (0: onnxruntime's choice)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(X, batch=256):
        out = np.concatenate([session.run(None, {name: X[s:s + batch]})[0] for s in range(0, len(X), batch)])
        if softmax:
            out = np.exp(out - out.max(1, keepdims=True))
            out /= out.sum(1, keepdims=True)
        return out
    return run


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def write(folder, classifier, canonicalizer, classes, thresholds, provenance, input=None, output=None):
    """Exports both models (a torch classifier, or the path of a user's frozen ONNX file, copied
    as is) and writes bundle.json. `input` and `output` (a pretrained classifier's own input and
    its output map, Training/README.md) go into `models.classifier` only when given."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(classifier, (str, pathlib.Path)):
        if pathlib.Path(classifier).resolve() != (folder / "classifier.onnx").resolve():
            shutil.copyfile(classifier, folder / "classifier.onnx")
    else:
        export(classifier, folder / "classifier.onnx", "logits")
    export(canonicalizer, folder / "canonicalizer.onnx", "shift_logits")
    front_end = json.loads(subprocess.run([features.equivd_binary(), "features", "--parameters"],
                                          check=True, capture_output=True, text=True).stdout)
    bundle = {
        "format": FORMAT,
        "classes": list(classes),
        "front_end": front_end,
        "shift": {"range_bins": SHIFT_RANGE, "reference_bin": REFERENCE_BIN,
                  "bins_per_semitone": front_end["bins_per_semitone"], "edge_fill": "replicate"},
        "models": {
            "classifier": {"file": "classifier.onnx", "sha256": sha256(folder / "classifier.onnx"),
                           "output_kind": "logits"},
            "canonicalizer": {"file": "canonicalizer.onnx", "sha256": sha256(folder / "canonicalizer.onnx"),
                              "output_kind": f"logits over shifts -{SHIFT_RANGE}..{SHIFT_RANGE} bins"},
        },
        "thresholds": thresholds,
        "provenance": provenance,
    }
    if input is not None:
        bundle["models"]["classifier"]["input"] = input
    if output is not None:
        bundle["models"]["classifier"]["output"] = output
    (folder / "bundle.json").write_text(json.dumps(bundle, indent=2) + "\n")
    return bundle
