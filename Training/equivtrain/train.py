"""Training: the classifier on nominal data (then frozen), and the canonicalizer with the
canonicalization prior (no labels) or, for comparison, with the task loss alone; and the recipes
that make the default bundle from the seed (`train_models`, `train_canonicalizers`)."""

import hashlib
import json
import pathlib
import shutil
import time

import numpy as np
import torch
from torch import nn

from . import bundle, datasets, report, synth
from .models import SHIFT_RANGE, Canonicalizer, Classifier, classifier_from_onnx, translate


def _batches(n, size, rng):
    order = rng.permutation(n)
    for start in range(0, n, size):
        yield order[start:start + size]


def accuracy(model, X, y, batch=256):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(X), batch):
            correct += (model(torch.from_numpy(X[start:start + batch])).argmax(1).numpy() == y[start:start + batch]).sum()
    return correct / len(X)


def train_classifier(train, val, classes, epochs=14, seed=0, log=print):
    """A CNN trained on nominal-speed windows only; the best epoch on validation is kept."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X, y = train["X"], train["y"]
    model = Classifier(len(classes), mean=float(X.mean()), std=float(X.std()))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * ((len(X) + 63) // 64))
    best, best_state = -1.0, None
    for epoch in range(epochs):
        model.train()
        started = time.time()
        for idx in _batches(len(X), 64, rng):
            xb = torch.from_numpy(X[idx])
            # A random gain in dB is a constant offset in log magnitude: level invariance.
            xb = xb + torch.empty(len(idx), 1, 1, 1).uniform_(-1.0, 1.0)
            loss = nn.functional.cross_entropy(model(xb), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
        acc = accuracy(model, val["X"], val["y"])
        log(f"classifier epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, val accuracy {acc:.3f} ({time.time() - started:.0f} s)")
        if acc > best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model.eval()


def train_canonicalizer(train, val, classifier=None, prior=True, epochs=12, seed=0, log=print):
    """prior=True: the canonicalization prior in its equivariant form, CE(p(T_j X), j) for nominal
    X and random j (docs/architecture.md §2), half the windows with a stationary copy mixed in
    (`with_stationary_copy`): no labels needed. prior=False: the task loss through the frozen
    classifier alone, over the top-3 shifts with a straight-through weighting."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X, y = train["X"], train["y"]
    model = Canonicalizer(mean=float(X.mean()), std=float(X.std()))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    if classifier is not None:
        classifier.eval()
        for p in classifier.parameters():
            p.requires_grad_(False)
    for epoch in range(epochs):
        model.train()
        started = time.time()
        for idx in _batches(len(X), 64, rng):
            xb = torch.from_numpy(X[idx])
            j = torch.from_numpy(rng.integers(-SHIFT_RANGE, SHIFT_RANGE + 1, len(idx)))
            shifted = translate(xb, j)
            if prior:
                loss = nn.functional.cross_entropy(model(with_stationary_copy(shifted, xb, rng)), j + SHIFT_RANGE)
            else:
                loss = task_loss(model(shifted), shifted, torch.from_numpy(y[idx]), classifier)
            opt.zero_grad()
            loss.backward()
            opt.step()
        log(f"canonicalizer ({'prior' if prior else 'task loss'}) epoch {epoch + 1}/{epochs}: loss {loss.item():.3f} "
            f"({time.time() - started:.0f} s)")
    return model.eval()


def with_stationary_copy(shifted, original, rng, share=0.5, level_db=(-20.0, -6.0)):
    """For a random `share` of windows, the translated window plus its untranslated self 6…20 dB
    weaker (magnitudes add: ln(e^a + g·e^b) on the log spectrogram). A real speed change leaves
    mains hum, resonances and room noise where they were; this teaches the canonicalizer to
    follow the dominant, moving content rather than read what stayed put as a ruler (docs/architecture.md §7).
    Still label-free: the target stays the translation j."""
    n = len(shifted)
    gain = torch.from_numpy(rng.uniform(*level_db, (n, 1, 1, 1)).astype(np.float32)) * (np.log(10.0) / 20.0)
    use = torch.from_numpy(rng.random(n) < share).view(n, 1, 1, 1)
    return torch.where(use, torch.logaddexp(shifted, original + gain), shifted)


def task_loss(scores, x, labels, classifier, top=3):
    """CE of the frozen classifier on the canonicalized input. Forward: the top-1 shift alone;
    backward: through p renormalized over the top-3 shifts (straight-through)."""
    p = torch.softmax(scores, dim=1)
    topk = p.topk(top, dim=1)
    weights = topk.values / topk.values.sum(dim=1, keepdim=True)
    hard = torch.zeros_like(weights)
    hard[:, 0] = 1.0
    weights = hard + weights - weights.detach()
    probs = 0
    for i in range(top):
        k = topk.indices[:, i] - SHIFT_RANGE
        with torch.no_grad():
            out = torch.softmax(classifier(translate(x, -k)), dim=1)
        probs = probs + weights[:, i:i + 1] * out
    return nn.functional.nll_loss(torch.log(probs + 1e-8), labels)


def train_models(data_root, out, table, seed=1, epochs=14, canon_epochs=20, noprior_epochs=6,
                 noprior_out="data/noprior-bundle"):
    """Everything from the seed: datasets, the frozen classifier (exported to `out`), then
    `train_canonicalizers` for it."""
    torch.set_num_threads(2)
    splits = {name: datasets.load(data_root, name) for name in ("train", "val")}
    classifier = train_classifier(splits["train"], splits["val"], synth.CLASSES, epochs=epochs, seed=seed)
    pathlib.Path(out).mkdir(parents=True, exist_ok=True)
    bundle.export(classifier, pathlib.Path(out) / "classifier.onnx", "logits")
    torch.save(classifier.state_dict(), pathlib.Path(data_root) / "classifier.pt")
    provenance = {"generator": "equivtrain.synth", "seed": seed, "classifier_epochs": epochs,
                  "train_windows": int(len(splits["train"]["X"]))}
    train_canonicalizers(data_root, out, table, seed, canon_epochs, noprior_epochs, noprior_out, provenance)


def train_canonicalizers(data_root, out, table, seed=1, canon_epochs=20, noprior_epochs=6,
                         noprior_out="data/noprior-bundle", provenance=None):
    """For the frozen classifier in `out`/classifier.onnx: the canonicalizer with the prior (no
    labels), calibration and bundle.json; the no-prior canonicalizer (task loss through the
    classifier) as row (b)'s bundle; then the results table. `provenance` defaults to the
    classifier's, from the bundle.json already there."""
    torch.set_num_threads(2)
    out = pathlib.Path(out)
    classifier_onnx = out / "classifier.onnx"
    if provenance is None:
        provenance = json.loads((out / "bundle.json").read_text())["provenance"]
    splits = {name: datasets.load(data_root, name) for name in ("train", "val")}
    prior = train_canonicalizer(splits["train"], splits["val"], prior=True, epochs=canon_epochs, seed=seed)
    thresholds = bundle.calibrate(bundle.onnx_function(classifier_onnx, softmax=True), bundle.torch_function(prior, softmax=False),
                                  splits["val"]["X"], np.random.default_rng(seed))
    provenance.update(canonicalizer_epochs=canon_epochs, noprior_epochs=noprior_epochs)
    bundle.write(out, classifier_onnx, prior, synth.CLASSES, thresholds, provenance)
    print(f"{out}: bundle written; thresholds {thresholds}", flush=True)
    noprior = train_canonicalizer(splits["train"], splits["val"], prior=False, epochs=noprior_epochs, seed=seed,
                                  classifier=classifier_from_onnx(classifier_onnx, len(synth.CLASSES)))
    write_noprior_bundle(noprior, out, noprior_out, noprior_epochs, seed)
    torch.save({"prior": prior.state_dict(), "noprior": noprior.state_dict()}, pathlib.Path(data_root) / "canonicalizers.pt")
    report.write_table(data_root, out, noprior_out, table)


def write_noprior_bundle(canonicalizer, bundle_dir, out, epochs, seed):
    """Row (b)'s canonicalizer as a bundle of its own: `bundle_dir` with its canonicalizer
    replaced, so that the table and `equivd replay` evaluate the same file."""
    out = pathlib.Path(out)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(bundle_dir, out)
    bundle.export(canonicalizer, out / "canonicalizer.onnx", "shift_logits")
    manifest = json.loads((out / "bundle.json").read_text())
    manifest["models"]["canonicalizer"]["sha256"] = hashlib.sha256((out / "canonicalizer.onnx").read_bytes()).hexdigest()
    manifest["provenance"]["canonicalizer"] = f"no prior, task loss, {epochs} epochs, seed {seed}"
    (out / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
