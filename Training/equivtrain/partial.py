"""Partial translation (issue 15, docs/results.md "Speed shift: moving only what turns with the
machine"): how far the speed-shift ceiling of row (o) rises when only the rotation-locked part of a
window is translated back and the part that stays at its frequency (F) is left where it is,

    X̃ = log(F̂ + T₋ₖ(max(exp X − F̂, 0))),

with k the true shift (the ceiling of any canonicalizer) and F̂ from three sources: the generator's
own fixed part (the best any estimate can do), a per-bin minimum over the machine's recordings at
several speeds (what a stream's history across speeds gives), and a small separator trained on the
generator's parts (no class labels). The last rows are a whole method: the bundle's canonicalizer
reads k from the window and F̂'s own shift from F̂ (a resampled recording moved F too). It
measures; nothing here ships in a bundle yet."""

import pathlib

import numpy as np
import scipy.io.wavfile
import torch
from torch import nn

from . import features, synth
from .bundle import onnx_function
from .datasets import SHIFTS
from .models import SHIFT_RANGE, translate
from .report import write_section

POOL = 5          # the separator judges 5-frame cells, as the canonicalizer pools time
LOG_FLOOR = 1e-6  # the front end's floor (bundle front_end.log_floor)


def render_parts(out, per_class, seed, kind, seconds=8.0, keep=4.0, shifts=SHIFTS):
    """Clips of the paired test machines (the nominal set's seed and draws, datasets.generate) at
    each shift, with their fixed parts beside them: windows X and F [N, 1, bins, frames], labels
    and shifts per window, and the machine index of each window."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for c, label in enumerate(synth.CLASSES):
        for i in range(per_class):
            machine = synth.make_machine(label, np.random.default_rng([seed, c, i]))
            clip_rng = lambda: np.random.default_rng([seed, c, i, 100, 0])  # noqa: E731
            nominal = synth.render(machine, seconds, clip_rng(), parts=True)
            for s in shifts:
                if kind == "speed":
                    x, f = synth.render(machine, seconds, clip_rng(), speed=synth.speed_factor(s), parts=True)
                else:  # everything moves: the nominal recording and its fixed part, resampled
                    x, f = (synth.resample_shift(part, s) for part in nominal)
                name = f"{label}-{i:04d}-{kind}{s:+03d}"
                for suffix, part in (("x", x), ("f", f)):
                    scipy.io.wavfile.write(out / f"{name}-{suffix}.wav", synth.RATE, part[:int(keep * synth.RATE)])
                rows.append((name, c, s, len(rows) // len(shifts)))
    windows = features.windows([out / f"{name}-{suffix}.wav" for name, *_ in rows for suffix in "xf"])
    count = [len(w) for w in windows[0::2]]
    return {
        "X": np.concatenate(windows[0::2])[:, None], "F": np.concatenate(windows[1::2])[:, None],
        "y": np.repeat([r[1] for r in rows], count), "semitones": np.repeat([r[2] for r in rows], count),
        "machine": np.repeat([r[3] for r in rows], count),
    }


def fixed_share(X, F):
    """The share of each 5-frame cell's magnitude that is fixed content, in [0, 1]."""
    pool = lambda a: nn.functional.avg_pool2d(torch.as_tensor(a).exp(), (1, POOL))  # noqa: E731
    return (pool(F) / pool(X)).clamp(0, 1).numpy()


def partial_translate(X, fixed, shifts, fixed_shifts=0):
    """X̃ = log(T₋ⱼ F̂ + T₋ₖ(max(exp X − F̂, 0))) per window, with F̂ = `fixed` (linear magnitude,
    broadcast over frames), k = `shifts` and j = `fixed_shifts` in bins (0: F̂ stays)."""
    E = np.exp(X)
    fixed = np.minimum(np.broadcast_to(fixed, E.shape), E)
    back = lambda A, k: translate(torch.from_numpy(A.astype(np.float32)), -torch.from_numpy(np.broadcast_to(k, len(A)).copy())).numpy()  # noqa: E731
    moved = back(np.log(E - fixed + LOG_FLOOR), shifts)
    return np.log(np.exp(back(np.log(fixed + LOG_FLOOR), fixed_shifts)) + np.exp(moved)).astype(np.float32)


def read_both(canonicalize, X, fixed):
    """The whole method: the canonicalizer reads k from the window and j from F̂ alone (0 when
    the machine sped up, k when the recording was resampled), and both are undone."""
    fixed = np.minimum(np.broadcast_to(fixed, X.shape), np.exp(X))
    read = lambda A: canonicalize(A.astype(np.float32)).argmax(1) - SHIFT_RANGE  # noqa: E731
    return partial_translate(X, fixed, read(X), read(np.log(fixed + LOG_FLOOR)))


def history_minimum(data, speeds):
    """F̂ per machine: the per-bin minimum, over its recordings at `speeds`, of the time-mean
    magnitude (rotation-locked lines sit elsewhere at another speed; what stays put is in all)."""
    spectrum = np.exp(data["X"]).mean(axis=3, keepdims=True)
    fixed = np.zeros_like(spectrum)
    for m in np.unique(data["machine"]):
        mine = data["machine"] == m
        per_speed = [spectrum[mine & (data["semitones"] == s)].mean(axis=0) for s in speeds]
        fixed[mine] = np.min(per_speed, axis=0)
    return fixed


class Separator(nn.Module):
    """The fixed share of each 5-frame cell, from the window alone: time pooled first, dilated
    convolutions along frequency with same padding (translation-equivariant, so it cannot learn
    where the training resonances were), a sigmoid per cell. About 3 k parameters."""

    def __init__(self, width=8, mean=-8.0, std=3.0):
        super().__init__()
        self.mean, self.std = mean, std
        layers, channels = [], 1
        for dilation in (1, 2, 4, 8):
            layers += [nn.Conv2d(channels, width, (5, 3), padding=(2 * dilation, 1), dilation=(dilation, 1)), nn.ReLU()]
            channels = width
        self.net = nn.Sequential(*layers, nn.Conv2d(width, 1, 1))

    def forward(self, x):
        x = nn.functional.avg_pool2d(x, (1, POOL))
        return torch.sigmoid(self.net((x - self.mean) / self.std))


def train_separator(data, steps, seed=0, batch=32):
    """Fits a Separator to the generator's fixed share (binary cross-entropy; no class labels)."""
    torch.manual_seed(seed)
    X, target = torch.from_numpy(data["X"]), torch.from_numpy(fixed_share(data["X"], data["F"]))
    net = Separator()
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    for step in range(steps):
        idx = torch.randint(0, len(X), (batch,))
        loss = nn.functional.binary_cross_entropy(net(X[idx]), target[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 500 == 0 or step == steps - 1:
            print(f"separator step {step}: loss {loss.item():.3f}", flush=True)
    return net.eval()


def separated(net, X):
    """F̂ per frame: the separator's share of each cell times the window's own magnitude."""
    with torch.no_grad():
        share = torch.cat([net(torch.from_numpy(X[i:i + 256])) for i in range(0, len(X), 256)]).numpy()
    return np.repeat(share, POOL, axis=3) * np.exp(X)


def training_parts(out, per_class, seed):
    """The separator's training windows: training-seed machines at two random speeds each
    (±12 semitones), so that position in frequency tells it nothing."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for c, label in enumerate(synth.CLASSES):
        for i in range(per_class):
            machine = synth.make_machine(label, np.random.default_rng([seed, c, i]))
            for j in range(2):
                x, f = synth.render(machine, 4.0, np.random.default_rng([seed, c, i, 7, j]),
                                    speed=synth.speed_factor(rng.uniform(-12, 12)), parts=True)
                names.append(f"{label}-{i:04d}-{j}")
                for suffix, part in (("x", x), ("f", f)):
                    scipy.io.wavfile.write(out / f"{names[-1]}-{suffix}.wav", synth.RATE, part)
    windows = features.windows([out / f"{n}-{s}.wav" for n in names for s in "xf"])
    return {"X": np.concatenate(windows[0::2])[:, None], "F": np.concatenate(windows[1::2])[:, None]}


def run(bundle, work, results, per_class=8, train_per_class=60, steps=1500, seed=101, test_seed=303):
    """Measures the rows on `per_class` paired test machines per class and writes them into
    `results` (section "partial")."""
    work = pathlib.Path(work)
    classify = onnx_function(pathlib.Path(bundle) / "classifier.onnx", softmax=False)
    canonicalize = onnx_function(pathlib.Path(bundle) / "canonicalizer.onnx", softmax=False)
    net = train_separator(training_parts(work / "train", train_per_class, seed), steps)
    lines = ["| F̂ (left in place unless read), k (the true shift unless read) | set | " + " | ".join(f"{s:+d} st" for s in SHIFTS)
             + " | all | normal | bearing |", "| --- | --- |" + " ---: |" * (len(SHIFTS) + 3)]
    for kind in ("speed", "resample"):
        data = render_parts(work / kind, per_class, test_seed, kind)
        k = 2 * data["semitones"]
        rows = [("none: the window as it is (a)", data["X"]),
                ("nothing fixed: translate all (o)", partial_translate(data["X"], 0.0, k)),
                ("the generator's fixed part (a ceiling)", partial_translate(data["X"], np.exp(data["F"]), k)),
                ("minimum over the machine's 9 speeds (history)", partial_translate(data["X"], history_minimum(data, SHIFTS), k)),
                ("minimum over its −6, 0, +6 st recordings", partial_translate(data["X"], history_minimum(data, (-6, 0, 6)), k)),
                ("separator trained on generator parts", partial_translate(data["X"], separated(net, data["X"]), k)),
                ("generator's part; k and F̂'s own shift read by the canonicalizer", read_both(canonicalize, data["X"], np.exp(data["F"]))),
                ("separator; k and F̂'s own shift read by the canonicalizer", read_both(canonicalize, data["X"], separated(net, data["X"])))]
        for name, windows in rows:
            right = np.concatenate([classify(windows[i:i + 256]).argmax(1) for i in range(0, len(windows), 256)]) == data["y"]
            cells = [right[data["semitones"] == s].mean() * 100 for s in SHIFTS]
            cells += [right.mean() * 100] + [right[data["y"] == synth.CLASSES.index(c)].mean() * 100 for c in ("normal", "bearing")]
            lines.append(f"| {name} | {kind} | " + " | ".join(f"{v:.1f}" for v in cells) + " |")
            print(lines[-1], flush=True)
    lines.append(f"\n{per_class} machines per class of the paired test sets (seed {test_seed}), 5 windows per shift; "
                 f"separator: {train_per_class} training-seed machines per class at two random speeds, {steps} steps.")
    write_section(results, "partial", "\n".join(lines))
