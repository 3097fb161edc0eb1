"""Partial translation (issue 15, docs/results.md "Speed shift past the translation ceiling"): how
far the speed-shift ceiling of row (o) rises when only the rotation-locked part of a window is
translated back and the part that stays at its frequency (F) is left where it is,

    X̃ = log(F̂ + T₋ₖ(max(exp X − F̂, 0))),

with k the true shift (the ceiling of any canonicalizer) and F̂ from the generator's own fixed part
(the best any estimate can do), from a per-bin minimum over the machine's recordings at several
speeds (what a stream's history across speeds gives), or from a small separator trained on the
generator's parts (no class labels). The last rows are whole methods, with no true shift: the
bundle's canonicalizer reads k from the window, and F̂'s own shift (a resampled recording moved F
too) is read by the same canonicalizer (tried) or by FixedPose, trained with the prior on F̂ alone.
That last one ships: `fit` adds the separator and FixedPose to a bundle, and `canonical_windows`
is the reference of equivd's mode `partial` (docs/architecture.md §9)."""

import json
import pathlib

import numpy as np
import scipy.io.wavfile
import torch
from torch import nn

from . import features, synth
from .bundle import export, onnx_function, sha256, torch_function
from .datasets import SHIFTS
from .models import REFERENCE_BIN, SHIFT_RANGE, translate
from .report import write_section

POOL = 5          # the separator pools 5 frames first, as the canonicalizer does
LOG_FLOOR = 1e-6  # the front end's floor: X = log(|S| + LOG_FLOOR) (bundle front_end.log_floor)


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
    """The share of each 5-frame cell's magnitude that is fixed content, in [0, 1] (the separator
    learns its mean over the window's cells, per bin)."""
    pool = lambda a: nn.functional.avg_pool2d(torch.as_tensor(a).exp(), (1, POOL))  # noqa: E731
    return (pool(F) / pool(X)).clamp(0, 1).numpy()


def partial_translate(X, fixed, shifts, fixed_shifts=0):
    """X̃ = log(T₋ⱼ F̂ + T₋ₖ(max(exp X − F̂, 0))) per window, with F̂ = `fixed` (linear magnitude,
    broadcast over frames), k = `shifts` and j = `fixed_shifts` in bins (0: F̂ stays). Magnitudes
    are translated; the front end's floor (X = log(|S| + floor)) is taken out first and put back
    once."""
    E = np.maximum(np.exp(X.astype(np.float64)) - LOG_FLOOR, 0)
    fixed = np.clip(np.broadcast_to(fixed, E.shape), 0, E)
    back = lambda A, k: translate(torch.from_numpy(A), -torch.from_numpy(np.broadcast_to(k, len(A)).copy())).numpy()  # noqa: E731
    return np.log(back(fixed, fixed_shifts) + back(E - fixed, shifts) + LOG_FLOOR).astype(np.float32)


def read_shift(canonicalize, X):
    """The shift (bins) the canonicalizer reads from each window X [N, 1, F, T], in log."""
    return canonicalize(X.astype(np.float32)).argmax(1) - SHIFT_RANGE


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


def _dilated_1d(channels, width, kernel):
    """Dilated 1-D convolutions along frequency with same padding (translation-equivariant: they
    cannot learn where the training resonances were)."""
    layers = []
    for dilation in (1, 2, 4, 8, 16):
        layers += [nn.Conv1d(channels, width, kernel, padding=dilation * (kernel // 2), dilation=dilation), nn.ReLU()]
        channels = width
    return layers


class Separator(nn.Module):
    """The fixed share of each frequency bin, from the window alone: time pooled, one 3×3 layer,
    mean over time, dilated 1-D convolutions, a sigmoid per bin. 22 k parameters, 3.9 M
    multiply-adds (7 % of the classifier's 55.8 M)."""

    def __init__(self, width=32, mean=-8.0, std=3.0):
        super().__init__()
        self.mean, self.std = mean, std
        self.frontend = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.net = nn.Sequential(*_dilated_1d(8, width, 5), nn.Conv1d(width, 1, 1))

    def forward(self, x):
        h = self.frontend((nn.functional.avg_pool2d(x, (1, POOL)) - self.mean) / self.std).mean(dim=3)
        return torch.sigmoid(self.net(h)).unsqueeze(3)   # [N, 1, F, 1]


class FixedPose(nn.Module):
    """Scores of each shift j of the fixed part alone (log of F̂'s time-mean, one score per bin as
    the canonicalizer has them): j = 0 when the machine sped up, j = k when the recording was
    resampled and everything moved. 3.5 M multiply-adds."""

    def __init__(self, width=32, mean=-8.0, std=3.0):
        super().__init__()
        self.mean, self.std = mean, std
        self.net = nn.Sequential(*_dilated_1d(1, width, 5), nn.Conv1d(width, 1, 3, padding=1))

    def forward(self, log_fixed):   # [N, 1, F, 1]
        scores = self.net((log_fixed[..., 0] - self.mean) / self.std)[:, 0]
        return scores[:, REFERENCE_BIN - SHIFT_RANGE:REFERENCE_BIN + SHIFT_RANGE + 1]


def _fit(net, batches, steps, name):
    """Adam with a cosine schedule over `steps` batches of (loss of net) from `batches(step)`."""
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for step in range(steps):
        loss = batches(net)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 500 == 0 or step == steps - 1:
            print(f"{name} step {step}: loss {loss.item():.3f}", flush=True)
    return net.eval()


def train_separator(data, steps, seed=0, batch=32):
    """A Separator fitted to the generator's fixed share per bin (binary cross-entropy; no class
    labels), and a FixedPose fitted to its F̂ of the same windows translated by random shifts
    (the canonicalizer's prior, on the fixed part: no labels either)."""
    torch.manual_seed(seed)
    X = torch.from_numpy(data["X"])
    target = torch.from_numpy(fixed_share(data["X"], data["F"])).mean(dim=3, keepdim=True)

    def separation(net):
        idx = torch.randint(0, len(X), (batch,))
        return nn.functional.binary_cross_entropy(net(X[idx]), target[idx])

    separator = _fit(Separator(), separation, steps, "separator")
    log_fixed = torch.from_numpy(np.log(separated(separator, data["X"]).mean(axis=3, keepdims=True) + LOG_FLOOR))

    def pose(net):
        idx = torch.randint(0, len(X), (2 * batch,))
        shifts = torch.randint(-SHIFT_RANGE, SHIFT_RANGE + 1, (2 * batch,))
        return nn.functional.cross_entropy(net(translate(log_fixed[idx], shifts)), shifts + SHIFT_RANGE)

    return separator, _fit(FixedPose(), pose, steps, "fixed pose")


def separated(net, X):
    """F̂ per frame: the separator's share of each bin times the window's own magnitude."""
    with torch.no_grad():
        share = torch.cat([net(torch.from_numpy(X[i:i + 256])) for i in range(0, len(X), 256)]).numpy()
    return share * np.exp(X)


def canonical_windows(X, shift_logits, share, fixed_pose):
    """The whole method on windows X [N, 1, F, T], as a bundle runs it (equivd's mode `partial`),
    with its three readers as numpy functions: k from the canonicalizer's `shift_logits`;
    F̂ = share of each bin × |X| per frame from the separator's `share` [N, F]; j from
    `fixed_pose`'s scores of log(F̂'s time mean): k where it scores F̂ as moved with the window (a
    resampled recording), else 0 (the machine sped up and F stayed). Returns X̃, k and j."""
    k = shift_logits(X).argmax(1) - SHIFT_RANGE
    fixed = share(X)[:, None, :, None] * np.exp(X)
    scores = fixed_pose(np.log(fixed.mean(axis=3, keepdims=True) + LOG_FLOOR).astype(np.float32))
    j = np.where(scores[np.arange(len(k)), k + SHIFT_RANGE] > scores[:, SHIFT_RANGE], k, 0)
    return partial_translate(X, fixed, k, j), k, j


class SharePerBin(nn.Module):
    """The separator as a bundle ships it: the fixed share of each bin, [N, F] (equivd's runtime
    takes one [1, n] output per model)."""

    def __init__(self, separator):
        super().__init__()
        self.separator = separator

    def forward(self, x):
        return self.separator(x).flatten(1)


def add_to_bundle(folder, separator, pose):
    """Exports the separator and FixedPose into a bundle folder and records them in its
    bundle.json (models.separator, models.fixed_pose), which gives the bundle equivd's mode
    `partial`; returns the new bundle.json as a dict."""
    folder = pathlib.Path(folder)
    export(SharePerBin(separator), folder / "separator.onnx", "fixed_share")
    export(pose, folder / "fixed_pose.onnx", "fixed_shift_logits", frames=1)
    manifest = json.loads((folder / "bundle.json").read_text())
    manifest["models"]["separator"] = {
        "file": "separator.onnx", "sha256": sha256(folder / "separator.onnx"),
        "output_kind": "share of each bin that stays at its frequency, 0..1"}
    manifest["models"]["fixed_pose"] = {
        "file": "fixed_pose.onnx", "sha256": sha256(folder / "fixed_pose.onnx"),
        "output_kind": f"logits over shifts -{SHIFT_RANGE}..{SHIFT_RANGE} bins of the fixed part's time mean"}
    (folder / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def bundle_readers(folder, threads=1):
    """The whole method of a bundle that has the separator and FixedPose, as a numpy function of
    windows (X̃, k, j), through onnxruntime; None for a bundle without them."""
    folder = pathlib.Path(folder)
    if not (folder / "separator.onnx").exists():
        return None
    readers = [onnx_function(folder / f"{name}.onnx", softmax=False, threads=threads)
               for name in ("canonicalizer", "separator", "fixed_pose")]
    return lambda X: canonical_windows(X, *readers)


def fit(folder, work, per_class=60, steps=3000, seed=101):
    """Trains the separator and FixedPose on generator parts of `per_class` machines per class of
    the training split's seed, at two random speeds (no class labels), and adds them to the bundle
    in `folder`."""
    separator, pose = train_separator(training_parts(pathlib.Path(work) / "train", per_class, seed), steps)
    add_to_bundle(folder, separator, pose)


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


def run(bundle, work, results, per_class=8, train_per_class=60, steps=3000, seed=101, test_seed=303):
    """Measures the rows on `per_class` paired test machines per class and writes them into
    `results` (section "partial")."""
    work = pathlib.Path(work)
    classify = onnx_function(pathlib.Path(bundle) / "classifier.onnx", softmax=False)
    canonicalize = onnx_function(pathlib.Path(bundle) / "canonicalizer.onnx", softmax=False)
    separator, pose = train_separator(training_parts(work / "train", train_per_class, seed), steps)
    lines = ["| F̂ (left in place unless read), k (the true shift unless read) | set | " + " | ".join(f"{s:+d} st" for s in SHIFTS)
             + " | all | normal | bearing |", "| --- | --- |" + " ---: |" * (len(SHIFTS) + 3)]
    for kind in ("speed", "resample"):
        data = render_parts(work / kind, per_class, test_seed, kind)
        k = 2 * data["semitones"]
        fixed, read = separated(separator, data["X"]), read_shift(canonicalize, data["X"])
        rows = [("none: the window as it is (a)", data["X"]),
                ("nothing fixed: translate all (o)", partial_translate(data["X"], 0.0, k)),
                ("nothing fixed, k read by the canonicalizer (c)", partial_translate(data["X"], 0.0, read)),
                ("the generator's fixed part (a ceiling)", partial_translate(data["X"], np.exp(data["F"]), k)),
                ("minimum over the machine's 9 speeds (history)", partial_translate(data["X"], history_minimum(data, SHIFTS), k)),
                ("minimum over its −6, 0, +6 st recordings", partial_translate(data["X"], history_minimum(data, (-6, 0, 6)), k)),
                ("separator trained on generator parts", partial_translate(data["X"], fixed, k)),
                ("separator; k and F̂'s shift read by the canonicalizer (tried)",
                 partial_translate(data["X"], fixed, read, read_shift(canonicalize, np.log(fixed + LOG_FLOOR)))),
                ("**separator; k read, F̂ moved or not by FixedPose (whole method)**",
                 canonical_windows(data["X"], canonicalize, torch_function(SharePerBin(separator), softmax=False),
                                   torch_function(pose, softmax=False))[0])]
        for name, windows in rows:
            right = classify(windows).argmax(1) == data["y"]
            cells = [right[data["semitones"] == s].mean() * 100 for s in SHIFTS]
            cells += [right.mean() * 100] + [right[data["y"] == synth.CLASSES.index(c)].mean() * 100 for c in ("normal", "bearing")]
            lines.append(f"| {name} | {kind} | " + " | ".join(f"{v:.1f}" for v in cells) + " |")
            print(lines[-1], flush=True)
    lines.append(f"\n{per_class} machines per class of the paired test sets (seed {test_seed}), 5 windows per shift; "
                 f"separator and FixedPose: {train_per_class} training-seed machines per class at two random speeds, "
                 f"{steps} steps each.")
    write_section(results, "partial", "\n".join(lines))
