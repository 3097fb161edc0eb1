"""Whole-model fixtures: small networks exported by torch.onnx.export, run by onnxruntime on
seeded random inputs, stored in the layout of ONNX's node tests (model.onnx,
test_data_set_0/input_K.pb, output_K.pb) so the same Swift runner checks them.

    .venv/bin/python Tests/EquivModelTests/Fixtures/make_fixtures.py    # see scripts/setup-train-env.sh

Needs Debian's python3-torch and python3-onnx, and onnxruntime from pip.
"""

import pathlib

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import torch
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent


class SmallClassifier(nn.Module):
    """The classifier family of docs/architecture.md §7 in miniature: Conv+BN+ReLU blocks, pooling,
    a dilated and a depthwise conv, mean over time, dropout, linear, softmax."""

    def __init__(self, classes=5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8), nn.BatchNorm2d(8), nn.LeakyReLU(0.1),
            nn.Conv2d(8, 16, (3, 5), stride=(1, 2), padding=(1, 2)), nn.ReLU(), nn.AvgPool2d((2, 1)),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(16 * 10, 32), nn.Tanh(),
                                  nn.Linear(32, classes))

    def forward(self, x):
        x = self.features(x)           # [N, 16, 10, T]
        x = x.mean(dim=3)              # pool over time only
        return torch.softmax(self.head(x), dim=1)


class SmallCanonicalizer(nn.Module):
    """A translation-equivariant scorer over frequency: 2-D convs, mean over time, dilated
    1-D convs over frequency with same padding, one score per bin."""

    def __init__(self):
        super().__init__()
        self.conv2d = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU())
        self.conv1d = nn.Sequential(nn.Conv1d(6, 6, 3, padding=2, dilation=2), nn.ReLU(),
                                    nn.Conv1d(6, 1, 3, padding=4, dilation=4))

    def forward(self, x):
        h = self.conv2d(x).mean(dim=3)  # [N, 6, F]
        return torch.log_softmax(self.conv1d(h).flatten(1), dim=1)


def export(name, model, shape, seed):
    torch.manual_seed(seed)
    for m in model.modules():  # non-trivial batch-norm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    folder = HERE / name
    (folder / "test_data_set_0").mkdir(parents=True, exist_ok=True)
    x = torch.randn(*shape)
    torch.onnx.export(model, x, folder / "model.onnx", opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    model.eval()  # torch 1.13 can leave modules in training mode after export (docs/architecture.md §7)
    y = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.numpy()})[0]
    with torch.no_grad():
        assert np.allclose(model(x).numpy(), y, rtol=1e-4, atol=1e-6), "torch and onnxruntime disagree"
    for kind, array in (("input", x.numpy()), ("output", y)):
        (folder / "test_data_set_0" / f"{kind}_0.pb").write_bytes(
            onnx.numpy_helper.from_array(array.astype(np.float32)).SerializeToString())
    ops = sorted({n.op_type for n in onnx.load(folder / "model.onnx").graph.node})
    print(f"{name}: input {list(shape)}, output {list(y.shape)}, ops {', '.join(ops)}")


if __name__ == "__main__":
    export("small_classifier", SmallClassifier(), (3, 1, 40, 24), seed=1)
    export("small_canonicalizer", SmallCanonicalizer(), (2, 1, 48, 20), seed=2)
