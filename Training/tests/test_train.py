"""The stationary copy the prior's training mixes in: in linear magnitude, the moved window plus the
unmoved one at a gain between −20 and −6 dB, on about the asked share of windows; the rest
untouched."""

import numpy as np
import torch

from equivtrain import models, train


def test_stationary_copy_adds_the_unmoved_window_in_linear_magnitude():
    rng = np.random.default_rng(0)
    # Values within one unit of each other, so that float32 resolves every added copy.
    original = torch.from_numpy(rng.uniform(-6, -5, (400, 1, models.BINS, 20)).astype(np.float32))
    shifted = models.translate(original, torch.from_numpy(rng.integers(-24, 25, 400)))
    mixed = train.with_stationary_copy(shifted, original, np.random.default_rng(1))

    # What was added, back in linear magnitude, divided by the unmoved window: one gain per window.
    gain = ((mixed.double().exp() - shifted.double().exp()) / original.double().exp()).numpy()
    per_window = gain.reshape(len(gain), -1)
    touched = per_window.max(1) > 1e-4
    assert 0.4 < touched.mean() < 0.6, touched.mean()
    assert np.array_equal(mixed[~touched].numpy(), shifted[~touched].numpy())
    g = per_window[touched]
    assert np.allclose(g, g[:, :1], rtol=1e-3), "one gain for the whole window"
    db = 20 * np.log10(g[:, 0])
    assert db.min() >= -20.01 and db.max() <= -5.99, (db.min(), db.max())
    assert db.max() - db.min() > 10, "gains spread over the range"
