"""The results table's arithmetic on a toy problem whose answers are known: a "classifier" that
reads the position of one spectral line, test sets where the line moves with the shift, and
canonicalizers that find the shift, ignore it, or are off by one octave."""

import numpy as np
import pytest

pytest.importorskip("torch", reason="python3-torch is installed by `make deps-torch`")

from equivtrain import evaluate, report  # noqa: E402
from equivtrain.models import BINS, SHIFT_RANGE  # noqa: E402

LINES = {0: 40, 1: 120}   # class → bin of its line at nominal speed


def window(bin_):
    x = np.full((1, BINS, 100), -10.0, dtype=np.float32)
    x[0, bin_] = 0.0
    return x


def dataset(shifts):
    """Two machines per class, one window per machine and shift (B = 2 bins per semitone)."""
    X, y, unit, clip, semitones = [], [], [], [], []
    for c, line in LINES.items():
        for m in range(2):
            for s in shifts:
                X.append(window(line + 2 * s))
                y.append(c)
                unit.append(f"{c}-{m}")
                clip.append(len(clip))
                semitones.append(s)
    return {"X": np.stack(X), "y": np.array(y), "unit": np.array(unit), "clip": np.array(clip),
            "semitones": np.array(semitones)}


def classify(X):
    """Class 1 when the line is within 4 bins of class 1's nominal bin, else class 0: a model that
    depends on absolute frequency, as the frozen classifier does."""
    line = X[:, 0, :, 0].argmax(1)
    p = np.zeros((len(X), 2), dtype=np.float32)
    p[np.arange(len(X)), (np.abs(line - LINES[1]) <= 4).astype(int)] = 1.0
    return p


def canonicalizer(offset_bins):
    """Shift logits peaked at the true shift plus `offset_bins` (the line's distance from its class's
    nominal bin, which this toy knows)."""
    def logits(X):
        line = X[:, 0, :, 0].argmax(1)
        nominal = np.where(line < 80, LINES[0], LINES[1])
        z = np.full((len(X), 2 * SHIFT_RANGE + 1), -20.0, dtype=np.float32)
        z[np.arange(len(X)), line - nominal + offset_bins + SHIFT_RANGE] = 20.0
        return z
    return logits


def rows(shift_logits, partial=None):
    sets = {"nominal": dataset([0]), "speed": dataset([-6, 0, 6]), "resample": dataset([-3, 3])}
    return {r["method"][:3]: r for r in evaluate.table(sets, classify, shift_logits, threshold=0.5, partial=partial)}


def test_row_p_runs_only_with_its_readers_and_with_nothing_fixed_is_row_c():
    from equivtrain.partial import canonical_windows
    assert "(p)" not in rows({"prior": canonicalizer(0)})
    nothing_fixed = lambda X: np.zeros((len(X), BINS), dtype=np.float32)  # noqa: E731
    stayed = lambda L: np.eye(2 * SHIFT_RANGE + 1, dtype=np.float32)[np.full(len(L), SHIFT_RANGE)]  # noqa: E731
    r = rows({"prior": canonicalizer(0)}, partial=lambda X: canonical_windows(X, canonicalizer(0), nothing_fixed, stayed))
    for name in ("nominal", "speed", "resample"):
        assert r["(p)"][name] == r["(c)"][name] == 100.0
    assert r["(p)"]["calls"] == 1.0


def test_rows_a_b_c_and_the_oracle_on_a_problem_with_known_answers():
    r = rows({"prior": canonicalizer(0), "noprior": canonicalizer(10)})
    # (a): class 1's line leaves its 4 bins at ±3 and ±6 semitones; class 0 is the default label.
    assert r["(a)"]["nominal"] == 100.0
    assert r["(a)"]["speed"] == pytest.approx(100 * 8 / 12) and r["(a)"]["resample"] == 50.0
    mean, error = r["(a)"]["speed vs (a) nominal"]        # machines: 0, 0, −66.7, −66.7
    assert mean == pytest.approx(-100 / 3) and error == pytest.approx(np.std([0, 0, -200 / 3, -200 / 3], ddof=1) / 2)
    assert r["(a)"]["speed consistency"] == 50.0           # class 1's label changes with the shift
    # A canonicalizer that finds the true shift is the oracle, and it recovers everything.
    for name in ("speed", "resample"):
        assert r["(c)"][name] == r["(o)"][name] == 100.0
        assert r["(c)"][f"{name} vs (a) nominal"] == (0.0, 0.0)
    # One that is 10 bins off puts class 1's line at 110: every class-1 window wrong, at every shift.
    assert r["(b)"]["nominal"] == r["(b)"]["speed"] == r["(b)"]["resample"] == 50.0
    mean, error = r["(b)"]["speed vs (a) nominal"]         # machines: 0, 0, −100, −100
    assert mean == -50.0 and error == pytest.approx(np.std([0, 0, -100, -100], ddof=1) / 2)
    assert r["(b)"]["speed consistency"] == 100.0          # wrong, but the same label at every shift


def test_group_averaging_costs_2k_plus_1_calls_and_topk_runs_only_below_the_threshold():
    r = rows({"prior": canonicalizer(0)})
    assert "(b)" not in r                            # no no-prior canonicalizer given: no row (b)
    assert r["(e)"]["calls"] == 2 * SHIFT_RANGE + 1
    assert r["(d)"]["calls"] == 1.0                  # every window's max p is 1 > 0.5
    assert r["(a)"]["calls"] == r["(c)"]["calls"] == r["(o)"]["calls"] == 1.0


def test_shift_reading_counts_windows_within_one_bin_per_shift():
    speed = dataset([-6, 0, 6])
    per_shift, overall = evaluate.shift_reading(speed, canonicalizer(0))
    assert per_shift == {-6: 100.0, 0: 100.0, 6: 100.0} and overall == 100.0
    assert evaluate.shift_reading(speed, canonicalizer(1))[1] == 100.0      # one bin off still counts
    assert evaluate.shift_reading(speed, canonicalizer(2))[1] == 0.0        # two do not

    def always_zero(X):
        z = np.full((len(X), 2 * SHIFT_RANGE + 1), -20.0, dtype=np.float32)
        z[:, SHIFT_RANGE] = 20.0
        return z

    # One that reads nothing (a fixed line taken as the ruler) is right only where nothing moved.
    per_shift, overall = evaluate.shift_reading(speed, always_zero)
    assert per_shift == {-6: 0.0, 0: 100.0, 6: 0.0} and overall == pytest.approx(100 / 3)


def test_shift_markdown_has_a_line_per_canonicalizer_and_shifted_set():
    sets = {"nominal": dataset([0]), "speed": dataset([-6, 0, 6]), "resample": dataset([-3, 3])}
    text = evaluate.shift_markdown(sets, {"prior": canonicalizer(0), "noprior": canonicalizer(10)})
    lines = [line for line in text.splitlines() if line.startswith("| (")]
    assert lines[0].startswith("| (b) no prior | speed shift | 0.0 | 0.0 | 0.0 |")
    assert lines[1].startswith("| (b) no prior | resample shift |")
    assert lines[2] == "| (c) with prior | speed shift | 100.0 | 100.0 | 100.0 | 100.0 |"
    assert len(lines) == 4                                  # the nominal set reads no shift


def test_markdown_has_a_line_per_row_and_the_paired_columns():
    r = list(rows({"prior": canonicalizer(0)}).values())
    text = evaluate.markdown(r, {"nominal": 4, "speed": 12, "resample": 8, "machines": 4})
    lines = [line for line in text.splitlines() if line.startswith("| (")]
    assert len(lines) == len(r)
    assert "| +0.0 ± 0.0 | +0.0 ± 0.0 |" in lines[1]                   # row (c)
    assert "from the same 4 machines" in text


def test_write_section_replaces_only_its_marked_part(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("intro\n<!-- table -->\nold\n<!-- /table -->\noutro\n")
    report.write_section(doc, "table", "new")
    assert doc.read_text() == "intro\n<!-- table -->\nnew\n<!-- /table -->\noutro\n"
    report.write_section(doc, "other", "x")
    assert doc.read_text().endswith("outro\n\n<!-- other -->\nx\n<!-- /other -->\n")
