"""The whole-model fixtures still hold what onnxruntime computes: the Swift suite compares
equivd with these stored outputs, so together the two show equivd ≈ onnxruntime, live."""

import pathlib

import numpy as np
import onnx.numpy_helper
import onnxruntime as ort
import pytest

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "EquivModelTests" / "Fixtures"


def read(path):
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return onnx.numpy_helper.to_array(tensor)


@pytest.mark.parametrize("name", ["small_classifier", "small_canonicalizer"])
def test_stored_outputs_are_onnxruntime_outputs(name):
    folder = FIXTURES / name
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    x = read(folder / "test_data_set_0" / "input_0.pb")
    want = read(folder / "test_data_set_0" / "output_0.pb")
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
