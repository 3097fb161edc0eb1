"""Training: the classifier on nominal data (then frozen), and the canonicalizer with the
canonicalization prior (no labels) or, for comparison, with the task loss alone."""

import time

import numpy as np
import torch
from torch import nn

from .models import SHIFT_RANGE, Canonicalizer, Classifier, translate


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
