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

from . import bundle, datasets, partial, progress, report, synth
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


# byod's training length: optimizer steps of BATCH windows, scaled to the data, with early stopping
# (`train_classifier_steps`, `train_canonicalizer_steps`). The default bundle's recipes above
# (`train_classifier`, `train_canonicalizer`, used by `train_models`) keep their epochs, so that
# `make models` still makes the same bundle.
BATCH = 64


def default_steps(windows, epochs, floor, cap=30000, batch=BATCH):
    """`epochs` passes over `windows` training windows in optimizer steps, at least `floor` and
    at most `cap`."""
    return int(min(cap, max(floor, epochs * -(-int(windows) // batch))))


def _endless_batches(n, size, rng):
    if n == 0:
        raise ValueError("no training windows")
    while True:
        yield from _batches(n, size, rng)


def shift_accuracy(model, X, j, batch=256, translated=True):
    """The share of windows X translated by j (or, `translated=False`, already shifted by j)
    whose top-1 shift is j exactly, and within one bin."""
    model.eval()
    found = []
    with torch.no_grad():
        for start in range(0, len(X), batch):
            shifted = torch.from_numpy(X[start:start + batch])
            if translated:
                shifted = translate(shifted, torch.from_numpy(j[start:start + batch]))
            found.append(model(shifted).argmax(1).numpy() - SHIFT_RANGE)
    error = np.abs(np.concatenate(found) - j)
    return float(np.mean(error == 0)), float(np.mean(error <= 1))


def _early_stopping(label, model, step, steps, evaluate, eval_every, patience, log, show_progress):
    """Runs `step()` up to `steps` times; every `eval_every` steps (and at the last) `evaluate()`
    gives a score; the best state is kept and training stops after `patience` evaluations without
    improvement. Returns the best score, the step it came at, and the steps run."""
    bar = progress.Progress(label, steps, "steps") if show_progress else None
    best, best_step, best_state, waited, done = -1.0, 0, None, 0, 0
    started = time.time()
    for done in range(1, steps + 1):
        loss = step()
        if done % eval_every == 0 or done == steps:
            score = evaluate()
            model.train()
            if score > best:
                best, best_step, waited = score, done, 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                waited += 1
            note = f"loss {loss:.3f}, {score:.3f} (best {best:.3f} at step {best_step})"
            if bar is not None:
                bar.update(0, note)
            if waited >= patience:
                break
        if bar is not None:
            bar.update(1)
    stopped = done < steps
    summary = (f"{label}: best {best:.3f} at step {best_step} of {done}"
               f"{' (stopped early: no improvement in ' + str(patience) + ' evaluations)' if stopped else ''}"
               f", {time.time() - started:.0f} s")
    if bar is not None:
        bar.close()
    log(summary)
    model.load_state_dict(best_state)
    return {"best": best, "best_step": best_step, "steps_run": done, "stopped_early": stopped}


def _check_splits(train, val):
    for name, split in (("training", train), ("validation", val)):
        if len(split["X"]) == 0:
            raise ValueError(f"the {name} split has no windows")


def _subset(n, limit, rng):
    return np.sort(rng.permutation(n)[:limit]) if n > limit else np.arange(n)


def train_classifier_steps(train, val, classes, steps, eval_every=100, patience=10, seed=0, eval_windows=2000,
                           log=print, show_progress=True):
    """`train_classifier` counted in optimizer steps: the one-cycle schedule over `steps`, the
    validation accuracy (on at most `eval_windows` validation windows, a fixed subset) every
    `eval_every` steps, the best state kept, stopping after `patience` evaluations without
    improvement. Returns the model and the figures of the run."""
    _check_splits(train, val)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X, y = train["X"], train["y"]
    model = Classifier(len(classes), mean=float(X.mean()), std=float(X.std()))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    batches = _endless_batches(len(X), BATCH, rng)
    pick = _subset(len(val["X"]), eval_windows, np.random.default_rng(seed + 1))
    Xv, yv = val["X"][pick], val["y"][pick]
    model.train()

    def step():
        idx = next(batches)
        xb = torch.from_numpy(X[idx]) + torch.empty(len(idx), 1, 1, 1).uniform_(-1.0, 1.0)  # level invariance
        loss = nn.functional.cross_entropy(model(xb), torch.from_numpy(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        return loss.item()

    figures = _early_stopping("classifier (validation accuracy)", model, step, steps, lambda: float(accuracy(model, Xv, yv)),
                              eval_every, patience, log, show_progress)
    return model.eval(), figures


def train_canonicalizer_steps(train, val, steps, eval_every=100, patience=10, seed=0, eval_windows=2000,
                              log=print, show_progress=True, resampled=None, resampled_val=None):
    """`train_canonicalizer` with the prior, counted in optimizer steps: every `eval_every` steps
    the exact shift accuracy on at most `eval_windows` held-out windows, the best state kept,
    stopping after `patience` evaluations without improvement. No labels used.

    `resampled` ({"X", "j"}): windows of the training recordings themselves resampled by j bins,
    the exact group action (`byod.resampled_copies`). Half of each batch is drawn from them: a
    translation moves only the spectrum, a resampled recording also runs faster or slower (a
    note decays sooner, a rotation's beat quickens), which is what a canonicalizer of real
    recordings can read. With `resampled_val`, held-out recordings resampled the same way are
    what early stopping scores; otherwise held-out windows translated by fixed random shifts.
    Returns the model and the figures of the run."""
    _check_splits(train, val)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X = train["X"]
    model = Canonicalizer(mean=float(X.mean()), std=float(X.std()))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    batches = _endless_batches(len(X), BATCH if resampled is None else BATCH // 2, rng)
    if resampled is not None:
        resampled_batches = _endless_batches(len(resampled["X"]), BATCH - BATCH // 2, rng)
    held_out = np.random.default_rng(seed + 1)
    if resampled_val is not None:
        pick = _subset(len(resampled_val["X"]), eval_windows, held_out)
        Xv, jv, translated = resampled_val["X"][pick], resampled_val["j"][pick], False
    else:
        Xv = val["X"][_subset(len(val["X"]), eval_windows, held_out)]
        jv, translated = held_out.integers(-SHIFT_RANGE, SHIFT_RANGE + 1, len(Xv)), True
    model.train()

    def step():
        idx = next(batches)
        xb = torch.from_numpy(X[idx])
        j = torch.from_numpy(rng.integers(-SHIFT_RANGE, SHIFT_RANGE + 1, len(idx)))
        xb = with_stationary_copy(translate(xb, j), xb, rng)
        if resampled is not None:
            more = next(resampled_batches)
            xb = torch.cat([xb, torch.from_numpy(resampled["X"][more])])
            j = torch.cat([j, torch.from_numpy(resampled["j"][more])])
        loss = nn.functional.cross_entropy(model(xb), j + SHIFT_RANGE)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    figures = _early_stopping("canonicalizer (shift accuracy)", model, step, steps,
                              lambda: shift_accuracy(model, Xv, jv, translated=translated)[0],
                              eval_every, patience, log, show_progress)
    return model.eval(), figures


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
    classifier's, from the bundle.json already there. The separator and FixedPose (mode `partial`,
    row (p)) are trained on the training seed's machines and added before the table."""
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
    partial.fit(out, pathlib.Path(data_root) / "partial", seed=datasets.SPLITS["train"][2])
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
