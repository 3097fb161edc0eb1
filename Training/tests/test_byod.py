"""Bring your own data: a tiny folder of generated clips with a manifest trains a bundle; a
user's frozen ONNX classifier gets a canonicalizer without labels; bad manifests are refused."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.io.wavfile

torch = pytest.importorskip("torch", reason="python3-torch is installed by `make deps-torch`")

from equivtrain import synth  # noqa: E402
from equivtrain.models import Classifier  # noqa: E402


def tiny_folder(root, labelled=True):
    rows = []
    for c, label in enumerate(("normal", "gear")):
        for i in range(3):
            m = synth.make_machine(label, np.random.default_rng([c, i]))
            name = f"{label}{i}.wav"
            scipy.io.wavfile.write(root / name, synth.RATE, synth.render(m, 2.0, np.random.default_rng([c, i, 1])))
            rows.append({"path": name, "label": label if labelled else ""})
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label"])
        w.writeheader()
        w.writerows(rows)
    return root / "manifest.csv"


def byod(*args):
    return subprocess.run([sys.executable, "-m", "equivtrain", "byod", *map(str, args)], capture_output=True, text=True)


def test_trains_a_classifier_and_a_canonicalizer_from_a_labelled_folder(tmp_path):
    manifest = tiny_folder(tmp_path)
    done = byod("--manifest", manifest, "--out", tmp_path / "bundle", "--train-classifier",
                "--epochs", 1, "--canon-epochs", 1)
    assert done.returncode == 0, done.stderr
    bundle = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert bundle["classes"] == ["gear", "normal"]
    assert (tmp_path / "bundle" / "classifier.onnx").exists() and (tmp_path / "bundle" / "canonicalizer.onnx").exists()


def test_a_frozen_onnx_classifier_gets_a_canonicalizer_without_labels(tmp_path):
    manifest = tiny_folder(tmp_path, labelled=False)
    frozen = tmp_path / "frozen.onnx"
    torch.onnx.export(Classifier(2).eval(), torch.randn(1, 1, 168, 100), frozen, opset_version=13,
                      input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    done = byod("--manifest", manifest, "--out", tmp_path / "bundle", "--classifier", frozen,
                "--classes", "ok,worn", "--canon-epochs", 1)
    assert done.returncode == 0, done.stderr
    bundle = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert bundle["classes"] == ["ok", "worn"]
    assert (tmp_path / "bundle" / "classifier.onnx").read_bytes() == frozen.read_bytes()


def test_a_manifest_naming_missing_files_is_refused(tmp_path):
    (tmp_path / "manifest.csv").write_text("path,label\nnope.wav,normal\n")
    done = byod("--manifest", tmp_path / "manifest.csv", "--out", tmp_path / "b", "--train-classifier")
    assert done.returncode != 0 and "nope.wav" in done.stderr


def test_training_a_classifier_needs_labels(tmp_path):
    manifest = tiny_folder(tmp_path, labelled=False)
    done = byod("--manifest", manifest, "--out", tmp_path / "b", "--train-classifier")
    assert done.returncode != 0 and "needs a label" in done.stderr
