"""The partial translation of equivtrain.partial, on windows built by hand."""

import numpy as np
import torch

from equivtrain.models import translate
from equivtrain.partial import history_minimum, partial_translate


def window(lines, frames=10, floor=1e-6):
    """A log-magnitude window [1, 1, 168, frames] with unit lines at `lines` (bin → magnitude)."""
    magnitude = np.full((1, 1, 168, frames), floor)
    for b, m in lines.items():
        magnitude[0, 0, b] = m
    return np.log(magnitude).astype(np.float32)


def test_only_what_is_not_fixed_moves_back():
    X = window({80: 1.0, 100: 0.5})   # 80: a fixed resonance; 100: a locked line moved up by 6 bins
    fixed = np.exp(window({80: 1.0}))
    out = partial_translate(X, fixed, np.array([6]))
    assert abs(out[0, 0, 80, 0] - 0.0) < 1e-4, "the fixed part stays where it is"
    assert abs(out[0, 0, 94, 0] - np.log(0.5)) < 1e-4, "the rest moves back by k"
    assert out[0, 0, 100, 0] < -10, "nothing is left where the moved line was"


def test_nothing_fixed_or_everything_moved_is_a_plain_translation():
    X = window({70: 1.0, 90: 0.3, 120: 2.0})
    plain = translate(torch.from_numpy(X), torch.tensor([-8])).numpy()
    assert np.allclose(partial_translate(X, 0.0, np.array([8])), plain, atol=1e-4)
    fixed = np.exp(window({90: 0.3}))
    assert np.allclose(partial_translate(X, fixed, np.array([8]), np.array([8])), plain, atol=1e-4)
    assert np.allclose(partial_translate(X, fixed, np.array([0])), X, atol=1e-4)


def test_history_keeps_what_all_speeds_share():
    X = np.concatenate([window({60: 1.0, 100 + 4 * s: 1.0}) for s in range(3)])   # 60 stays; a line moves
    data = {"X": X, "machine": np.zeros(3, int), "semitones": np.arange(3)}
    fixed = history_minimum(data, (0, 1, 2))
    assert fixed.shape == (3, 1, 168, 1)
    assert abs(fixed[0, 0, 60, 0] - 1.0) < 1e-6 and fixed[0, 0, 100, 0] < 1e-5
