"""The default bundle in Models/: its canonicalizer is equivariant to frequency translations,
its files match the hashes and parameters bundle.json records, and both models run in
onnxruntime on the front end's window shape."""

import hashlib
import json
import pathlib
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

from equivtrain import features
from equivtrain.models import REFERENCE_BIN, SHIFT_RANGE

MODELS = pathlib.Path(__file__).resolve().parents[2] / "Models"
pytestmark = pytest.mark.skipif(not (MODELS / "bundle.json").exists(), reason="no bundle in Models/ (make models)")


def session(name):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(MODELS / name), options, providers=["CPUExecutionProvider"])


def full_scores(x):
    """The canonicalizer's per-bin scores are cut to 2K+1 shifts; to test equivariance we compare
    the shift logits of a translated input with the original's, where both lie inside the cut."""
    return session("canonicalizer.onnx").run(None, {"x": x})[0]


def test_canonicalizer_is_equivariant_to_translations_away_from_the_edges():
    rng = np.random.default_rng(0)
    # A smooth random spectrogram with structure in the middle of the band, floor at the edges.
    x = np.full((1, 1, 168, 100), -12.0, dtype=np.float32)
    x[0, 0, 40:128] += rng.normal(0, 1, (88, 100)).cumsum(axis=0).astype(np.float32) * 0.3 + 4
    base = full_scores(x)[0]
    for j in (-6, -3, 3, 6):
        moved = np.full_like(x, -12.0)
        if j > 0:
            moved[0, 0, j:] = x[0, 0, :-j]
        else:
            moved[0, 0, :j] = x[0, 0, -j:]
        scores = full_scores(moved)[0]
        # Score of shift k for the moved input equals score of shift k − j for the original.
        inside = range(max(0, j) + 8, 2 * SHIFT_RANGE + 1 + min(0, j) - 8)
        got = np.array([scores[k] for k in inside])
        want = np.array([base[k - j] for k in inside])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_bundle_records_hashes_classes_and_the_front_end_of_this_equivd():
    bundle = json.loads((MODELS / "bundle.json").read_text())
    for role in ("classifier", "canonicalizer"):
        entry = bundle["models"][role]
        assert hashlib.sha256((MODELS / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    front_end = json.loads(subprocess.run([features.equivd_binary(), "features", "--parameters"],
                                          check=True, capture_output=True, text=True).stdout)
    assert bundle["front_end"] == front_end
    assert bundle["shift"] == {"range_bins": SHIFT_RANGE, "reference_bin": REFERENCE_BIN,
                               "bins_per_semitone": 2, "edge_fill": "replicate"}
    assert "normal" in bundle["classes"] and len(bundle["classes"]) >= 5
    t = bundle["thresholds"]
    assert 0 < t["canonicalizer_min_p"] < 1 and 0 < t["classifier_min_p"] < 1 and t["top_k"] >= 2


def test_both_models_run_on_a_batch_of_windows():
    x = np.random.default_rng(1).normal(-8, 2, (4, 1, 168, 100)).astype(np.float32)
    bundle = json.loads((MODELS / "bundle.json").read_text())
    assert session("classifier.onnx").run(None, {"x": x})[0].shape == (4, len(bundle["classes"]))
    assert session("canonicalizer.onnx").run(None, {"x": x})[0].shape == (4, 2 * SHIFT_RANGE + 1)
