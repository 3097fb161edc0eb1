"""The dataset generator's physics, checked with numpy's FFT (independent of equivd)."""

import numpy as np
import pytest

from equivtrain import synth


def spectrum(x):
    """Magnitude spectrum at 1 Hz resolution (1 s Hann frames, averaged)."""
    frames = np.lib.stride_tricks.sliding_window_view(x, synth.RATE)[::synth.RATE // 2]
    return np.abs(np.fft.rfft(frames * np.hanning(synth.RATE), axis=1)).mean(axis=0)


def peak_near(spec, hz, tolerance=3):
    lo, hi = int(hz - tolerance), int(hz + tolerance) + 1
    return spec[lo:hi].max() / np.median(spec[max(0, lo - 60):hi + 60])


def test_deterministic_by_seed():
    a = synth.render(synth.make_machine("gear", np.random.default_rng(5)), 2.0, np.random.default_rng(9))
    b = synth.render(synth.make_machine("gear", np.random.default_rng(5)), 2.0, np.random.default_rng(9))
    c = synth.render(synth.make_machine("gear", np.random.default_rng(6)), 2.0, np.random.default_rng(9))
    assert a.dtype == np.float32 and np.array_equal(a, b) and not np.array_equal(a, c)


def test_gear_mesh_scales_with_speed_and_mains_hum_does_not():
    m = synth.make_machine("gear", np.random.default_rng(1))
    m.mains_gain = 0.05
    for speed in (0.7, 1.0, 1.4):
        spec = spectrum(synth.render(m, 4.0, np.random.default_rng(2), speed=speed))
        mesh = m.teeth * m.fr * speed
        assert peak_near(spec, mesh, tolerance=0.02 * mesh) > 5, f"gear mesh at {mesh:.0f} Hz, speed {speed}"
        assert peak_near(spec, 150.0) > 5, f"mains harmonic at 150 Hz, speed {speed}"


def test_bearing_resonance_stays_put_while_impacts_speed_up():
    m = synth.make_machine("bearing", np.random.default_rng(3))
    m.severity = 1.5
    slow = spectrum(synth.render(m, 4.0, np.random.default_rng(4), speed=0.7))
    fast = spectrum(synth.render(m, 4.0, np.random.default_rng(4), speed=1.4))
    band = slice(int(m.resonance_hz * 0.85), int(m.resonance_hz * 1.15))
    for spec in (slow, fast):
        assert spec[band].mean() > 3 * np.median(spec[1000:2000]), "resonance energy around its fixed frequency"


def test_locked_content_stays_in_the_front_end_band_at_every_shift():
    m = synth.make_machine("misalignment", np.random.default_rng(7))
    m.mains_gain = m.ambience_gain = 0.0
    for s in (-12, 12):
        spec = spectrum(synth.render(m, 3.0, np.random.default_rng(8), speed=synth.speed_factor(s)))
        total = (spec ** 2).sum()
        inside = (spec[60:7681] ** 2).sum()
        assert inside / total > 0.99, f"{s:+d} st: {inside / total:.4f} of the energy in 60…7680 Hz"


def test_resample_shift_moves_everything_including_mains():
    m = synth.make_machine("normal", np.random.default_rng(11))
    m.mains_gain = 0.08
    x = synth.render(m, 4.0, np.random.default_rng(12))
    y = synth.resample_shift(x, 12)  # an octave up: 150 Hz hum lands on 300 Hz
    assert len(y) == pytest.approx(len(x) / 2, abs=2)
    spec = spectrum(np.concatenate([y, y]))
    assert peak_near(spec, 300.0) > 5


@pytest.mark.parametrize("label", synth.CLASSES)
def test_every_class_renders_finite_audio_below_full_scale(label):
    x = synth.render(synth.make_machine(label, np.random.default_rng(0)), 2.0, np.random.default_rng(1))
    assert np.isfinite(x).all() and 0 < np.abs(x).max() <= 0.99 + 1e-6


def test_unknown_class_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown class 'squeal'"):
        synth.make_machine("squeal", np.random.default_rng(0))


def test_shifted_sets_replay_the_nominal_recordings(tmp_path):
    """`generate` as datasets.load calls it for the test sets: the speed set's 0-semitone clip is the
    start of the nominal recording, and the resample set resamples the nominal recording itself,
    so a shifted clip differs from its nominal clip by the shift alone."""
    import scipy.io.wavfile

    from equivtrain.datasets import generate

    def clips(kind, shifts, keep):
        out = tmp_path / f"{kind}{keep}"
        generate(out, per_class=1, seconds=2.0, seed=3, shifts=shifts, kind=kind, keep=keep)
        return {p.name: scipy.io.wavfile.read(p)[1] for p in out.glob("*.wav")}

    nominal = clips("speed", (0,), 0.0)
    speed = clips("speed", (0, 3), 1.0)
    resample = clips("resample", (0, 3), 1.0)
    for label in synth.CLASSES:
        recording = nominal[f"{label}-0000-speed+00.wav"]
        assert len(recording) == 2 * synth.RATE
        assert np.array_equal(speed[f"{label}-0000-speed+00.wav"], recording[:synth.RATE])
        assert not np.array_equal(speed[f"{label}-0000-speed+03.wav"], recording[:synth.RATE])
        assert np.array_equal(resample[f"{label}-0000-resample+03.wav"], synth.resample_shift(recording, 3)[:synth.RATE])


def test_fixed_part_stays_put_and_the_rest_moves_with_speed():
    """`render(parts=True)`: the same clip as without, and a fixed part that sounds at the same
    frequencies at every speed, while what is left (rotation-locked) moves."""
    normal = synth.make_machine("normal", np.random.default_rng(20))
    plain = synth.render(normal, 2.0, np.random.default_rng(22))
    x, fixed = synth.render(normal, 2.0, np.random.default_rng(22), parts=True)
    assert np.array_equal(x, plain)
    # Hum, ambience and knocks are the same draws at any speed: the same sound, up to the clip's gain.
    _, fixed_fast = synth.render(normal, 2.0, np.random.default_rng(22), speed=synth.speed_factor(7), parts=True)
    scale = np.dot(fixed_fast, fixed) / np.dot(fixed, fixed)
    assert np.allclose(fixed_fast, scale * fixed, atol=1e-6)
    # A machine that makes no sound of its own leaves only the fixed part.
    normal.level = 0.0
    x, fixed = synth.render(normal, 2.0, np.random.default_rng(22), parts=True)
    assert np.array_equal(x, fixed)
    # A bearing's impacts come faster, but they ring the same resonance; the gear mesh moves.
    m = synth.make_machine("bearing", np.random.default_rng(21))
    mesh = m.teeth * m.fr
    for semitones in (0, 7):
        x, fixed = synth.render(m, 2.0, np.random.default_rng(22), speed=synth.speed_factor(semitones), parts=True)
        moved = mesh * synth.speed_factor(semitones)
        assert peak_near(spectrum(x - fixed), moved, tolerance=0.02 * moved) > 5
        assert peak_near(spectrum(fixed), moved, tolerance=0.02 * moved) < 3
        resonance = spectrum(fixed)[int(m.resonance_hz * 0.9):int(m.resonance_hz * 1.1)].mean()
        assert resonance > 3 * np.median(spectrum(fixed)[1000:2000])
