"""The generator and equivd's front end together: features come from equivd, and a machine
played s semitones faster moves its rotation-locked lines by 2·s bins there."""

import numpy as np
import scipy.io.wavfile

from equivtrain import features, synth


def test_speed_shift_moves_the_gear_mesh_by_two_bins_per_semitone(tmp_path):
    m = synth.make_machine("gear", np.random.default_rng(21))
    m.mains_gain = m.ambience_gain = 0.0
    paths = []
    for s in (0, 5, -7):
        path = tmp_path / f"gear{s:+d}.wav"
        scipy.io.wavfile.write(path, synth.RATE, synth.render(m, 3.0, np.random.default_rng(22), speed=synth.speed_factor(s)))
        paths.append(path)
    nominal, up, down = features.windows(paths)
    assert nominal.shape == (3, 168, 100) and nominal.dtype == np.float32
    mesh_bin = round(24 * np.log2(m.teeth * m.fr / 60.0))

    def peak(w):
        profile = w.mean(axis=(0, 2))
        return mesh_bin - 20 + int(np.argmax(profile[mesh_bin - 20:mesh_bin + 16]))

    assert abs(peak(nominal) - mesh_bin) <= 1
    assert peak(up) - peak(nominal) == 10
    assert peak(down) - peak(nominal) == -14


def test_a_broken_file_is_reported_by_name(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    try:
        features.windows([bad])
    except RuntimeError as error:
        assert str(bad) in str(error)
    else:
        raise AssertionError("no error")
