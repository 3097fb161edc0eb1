"""The frozen classifier and the pitch canonicalizer (docs/architecture.md §2), and the shift operator."""

import torch
from torch import nn

BINS = 168
SHIFT_RANGE = 24      # candidate shifts k ∈ [−K, K] bins, K = 12·B (one octave each way)
REFERENCE_BIN = 84    # the canonicalizer's score at REFERENCE_BIN + k is the score of shift k


def translate(x, shifts):
    """T_j X: each window of x [N, 1, F, T] moved up by shifts[n] bins along frequency. Vacated
    bins replicate the edge bin (docs/architecture.md §7: the log floor there is worse than nothing)."""
    f = x.shape[2]
    index = torch.arange(f, device=x.device).unsqueeze(0) - shifts.view(-1, 1)   # [N, F]
    index = index.clamp(0, f - 1)
    return torch.gather(x, 2, index.view(x.shape[0], 1, f, 1).expand(-1, x.shape[1], -1, x.shape[3]))


class Classifier(nn.Module):
    """About 0.86 M parameters. It depends on absolute frequency (the time-pooled feature map is
    flattened over frequency into a dense layer), as real frozen models do."""

    def __init__(self, classes, mean=-8.0, std=3.0):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

        def block(cin, cout, pool):
            layers = [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
            return layers + ([nn.MaxPool2d(2)] if pool else [])

        self.features = nn.Sequential(*block(1, 16, True), *block(16, 32, True), *block(32, 64, True),
                                      *block(64, 96, False))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(96 * 21, 384), nn.ReLU(), nn.Dropout(0.3),
                                  nn.Linear(384, classes))

    def forward(self, x):
        x = (x - self.mean) / self.std
        return self.head(self.features(x).mean(dim=3))   # logits


class Canonicalizer(nn.Module):
    """Translation-equivariant along frequency: average-pooling over time first (100 frames → 20:
    a shift estimate needs little time resolution, and every later layer runs on a fifth of the
    frames), convolutions with same padding, mean over time, dilated 1-D convolutions over
    frequency; one score per bin (no dense layer across frequency). Scores at REFERENCE_BIN + k,
    k ∈ [−K, K], are the logits of shift k."""

    def __init__(self, mean=-8.0, std=3.0, width=32):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))
        self.pool = nn.AvgPool2d((1, 5))
        self.conv2d = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        )
        layers, channels = [], 8
        for dilation in (1, 2, 4, 8):
            layers += [nn.Conv1d(channels, width, 3, padding=dilation, dilation=dilation), nn.ReLU()]
            channels = width
        layers += [nn.Conv1d(width, 1, 3, padding=1)]
        self.conv1d = nn.Sequential(*layers)

    def forward(self, x):
        x = (self.pool(x) - self.mean) / self.std           # pooling first: the affine map commutes with it
        h = self.conv2d(x).mean(dim=3)                      # [N, C, F]
        scores = self.conv1d(h).flatten(1)                  # [N, F]
        return scores[:, REFERENCE_BIN - SHIFT_RANGE:REFERENCE_BIN + SHIFT_RANGE + 1]   # [N, 2K+1]


def multiply_adds(model, shape=(1, 1, BINS, 100)):
    """Multiply-adds of one forward pass, counted over Conv and Linear layers."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            total += output.numel() * module.in_channels // module.groups * int(torch.tensor(module.kernel_size).prod())
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(shape))
    for h in handles:
        h.remove()
    return total


def classifier_from_onnx(path, classes):
    """The frozen classifier back in PyTorch from its ONNX export, to train against it. The
    exporter folded each BatchNorm into its convolution, so the BatchNorm layers become identities
    and the folded weights go into the convolutions."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    values = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    model = Classifier(classes, mean=float(values["mean"]), std=float(values["std"]))
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    exported = [n for n in graph.node if n.op_type == "Conv"]
    if len(exported) != len(convs):
        raise ValueError(f"{path}: {len(exported)} Conv nodes, the classifier has {len(convs)}")
    with torch.no_grad():
        for conv, norm, node in zip(convs, norms, exported):
            conv.weight.copy_(values[node.input[1]])
            conv.bias.copy_(values[node.input[2]])
            norm.weight.fill_(1)
            norm.bias.zero_()
            norm.running_mean.zero_()
            norm.running_var.fill_(1 - norm.eps)  # (x − 0) / √(var + ε) = x
        for name in ("head.1.weight", "head.1.bias", "head.4.weight", "head.4.bias"):
            model.get_parameter(name).copy_(values[name])
    return model.eval()
