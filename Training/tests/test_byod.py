"""Bring your own data: a tiny folder of generated clips with a manifest trains a bundle; a
user's frozen ONNX classifier gets a canonicalizer without labels, and so does a pretrained one
with an input of its own (log-mel) and a label map; bad manifests are refused. On real data: a
clip shorter than a window does not crash it, silent windows are dropped and counted, a split
without windows is a clear error, a too-small validation split is a warning (an exit with
--strict), the calibration figures are printed and stored, and --help gives every default."""

import csv
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.io.wavfile

torch = pytest.importorskip("torch", reason="python3-torch is installed by `make deps-torch`")

from equivtrain import bundle, byod as byod_module, features, synth  # noqa: E402
from equivtrain.models import REFERENCE_BIN, SHIFT_RANGE, Classifier  # noqa: E402

FAST = ("--steps", 2, "--canon-steps", 2, "--eval-every", 1)


def tiny_folder(root, labelled=True, extra=()):
    """Three 2 s clips of each of two classes (one window each), plus `extra` (name, samples, label) files."""
    rows = []
    for c, label in enumerate(("normal", "gear")):
        for i in range(3):
            m = synth.make_machine(label, np.random.default_rng([c, i]))
            name = f"{label}{i}.wav"
            scipy.io.wavfile.write(root / name, synth.RATE, synth.render(m, 2.0, np.random.default_rng([c, i, 1])))
            rows.append({"path": name, "label": label if labelled else ""})
    for name, samples, label in extra:
        scipy.io.wavfile.write(root / name, synth.RATE, np.asarray(samples, dtype=np.float32))
        rows.append({"path": name, "label": label if labelled else ""})
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label"])
        w.writeheader()
        w.writerows(rows)
    return root / "manifest.csv"


def byod(*args):
    return subprocess.run([sys.executable, "-m", "equivtrain", "byod", *map(str, args)], capture_output=True, text=True)


def test_trains_a_classifier_and_a_canonicalizer_from_a_labelled_folder(tmp_path):
    manifest = tiny_folder(tmp_path)
    done = byod("--manifest", manifest, "--out", tmp_path / "bundle", "--train-classifier", *FAST)
    assert done.returncode == 0, done.stderr
    bundle = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert bundle["classes"] == ["gear", "normal"]
    assert (tmp_path / "bundle" / "classifier.onnx").exists() and (tmp_path / "bundle" / "canonicalizer.onnx").exists()


def test_a_frozen_onnx_classifier_gets_a_canonicalizer_without_labels(tmp_path):
    manifest = tiny_folder(tmp_path, labelled=False)
    frozen = tmp_path / "frozen.onnx"
    torch.onnx.export(Classifier(2).eval(), torch.randn(1, 1, 168, 100), frozen, opset_version=13,
                      input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    done = byod("--manifest", manifest, "--out", tmp_path / "bundle", "--classifier", frozen,
                "--classes", "ok,worn", *FAST)
    assert done.returncode == 0, done.stderr
    bundle = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert bundle["classes"] == ["ok", "worn"]
    assert (tmp_path / "bundle" / "classifier.onnx").read_bytes() == frozen.read_bytes()


def test_a_manifest_naming_missing_files_is_refused(tmp_path):
    (tmp_path / "manifest.csv").write_text("path,label\nnope.wav,normal\n")
    done = byod("--manifest", tmp_path / "manifest.csv", "--out", tmp_path / "b", "--train-classifier")
    assert done.returncode != 0 and "nope.wav" in done.stderr


def test_training_a_classifier_needs_labels(tmp_path):
    manifest = tiny_folder(tmp_path, labelled=False)
    done = byod("--manifest", manifest, "--out", tmp_path / "b", "--train-classifier")
    assert done.returncode != 0 and "needs a label" in done.stderr


def test_a_clip_shorter_than_a_window_does_not_crash(tmp_path):
    short = 0.1 * np.random.default_rng(3).standard_normal(synth.RATE // 2)   # 0.5 s
    manifest = tiny_folder(tmp_path, extra=[("short.wav", short, "gear")])
    done = byod("--manifest", manifest, "--out", tmp_path / "bundle", "--train-classifier", *FAST)
    assert done.returncode == 0, done.stderr
    (windows,) = features.windows([tmp_path / "short.wav"])
    if len(windows) == 0:   # an equivd that does not pad short clips yet: a warning naming the file
        assert re.search(r"short\.wav: no windows \(shorter than one window", done.stderr), done.stderr
    else:                   # one that pads them to one window
        assert len(windows) == 1
    assert (tmp_path / "bundle" / "bundle.json").exists()


def test_a_split_without_windows_is_a_clear_error_not_a_dtype_crash(tmp_path):
    # Every file silent: every window dropped, so no split has any (before, the labels of an empty
    # split came out float64 and training crashed "expected scalar type Long but found Double").
    rows = "".join(f"silent{i}.wav,{label}\n" for i, label in enumerate(["gear", "gear", "normal", "normal"]))
    for i in range(4):
        scipy.io.wavfile.write(tmp_path / f"silent{i}.wav", synth.RATE, np.zeros(3 * synth.RATE, np.float32))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label\n" + rows)
    done = byod("--manifest", manifest, "--out", tmp_path / "bundle", "--train-classifier", *FAST)
    assert done.returncode != 0
    assert "the training split has no windows" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_labels_are_int64_whatever_a_split_holds():
    windows = [np.zeros((0, 168, 100), np.float32), np.full((2, 168, 100), -5.0, np.float32)]
    keep = [features.active(w) for w in windows]
    empty = byod_module.make_set(windows, keep, np.array([0]), ["a", "b"], ["a", "b"])
    assert empty["X"].shape == (0, 1, 168, 100) and empty["X"].dtype == np.float32
    assert empty["y"].dtype == np.int64 and len(empty["y"]) == 0
    none = byod_module.make_set(windows, keep, np.array([], dtype=np.int64), ["a", "b"], ["a", "b"])
    assert none["y"].dtype == np.int64 and none["X"].shape == (0, 1, 168, 100)
    some = byod_module.make_set(windows, keep, np.array([0, 1]), ["a", "b"], ["a", "b"])
    assert some["y"].dtype == np.int64 and list(some["y"]) == [1, 1]


def test_the_idle_gate_is_replays():
    w = np.full((3, 168, 100), -11.5, np.float32)
    w[0] -= 0.01
    w[2] += 0.01
    assert features.IDLE_MEAN_LOG == -11.5
    assert list(features.active(w)) == [False, True, True]


def test_silent_windows_are_dropped_and_counted(tmp_path):
    # Two 3 s files of silence (three windows each) and one loud 3 s file with a silent last 2 s.
    tail = np.concatenate([0.1 * np.random.default_rng(4).standard_normal(synth.RATE), np.zeros(2 * synth.RATE)])
    manifest = tiny_folder(tmp_path, labelled=False, extra=[("quiet0.wav", np.zeros(3 * synth.RATE), ""),
                                                            ("quiet1.wav", np.zeros(3 * synth.RATE), ""),
                                                            ("tail.wav", tail, "")])
    windows = features.windows([tmp_path / n for n in ("quiet0.wav", "quiet1.wav", "tail.wav")])
    silent = sum(int((~features.active(w)).sum()) for w in windows)
    assert silent >= 7, silent   # 3 + 3 + at least the tail's last window
    frozen = tmp_path / "frozen.onnx"
    torch.onnx.export(Classifier(2).eval(), torch.randn(1, 1, 168, 100), frozen, opset_version=13,
                      input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    done = byod("--manifest", manifest, "--out", tmp_path / "bundle", "--classifier", frozen, "--classes", "ok,worn", *FAST)
    assert done.returncode == 0, done.stderr
    assert f"dropped {silent} silent windows (mean log-band value below -11.5" in done.stdout, done.stdout
    counts = json.loads((tmp_path / "bundle" / "bundle.json").read_text())["provenance"]["windows"]
    assert counts["silent_dropped"] == silent
    assert counts["training"] + counts["validation"] == counts["total"] - silent


@pytest.fixture(scope="module")
def plain_and_strict(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    manifest = tiny_folder(root)
    strict = byod("--manifest", manifest, "--out", root / "strict", "--train-classifier", "--strict", *FAST)
    plain = byod("--manifest", manifest, "--out", root / "plain", "--train-classifier", *FAST)
    return root, plain, strict


def test_a_too_small_validation_split_warns_and_strict_exits(plain_and_strict):
    root, plain, strict = plain_and_strict
    # Six files of one window each: two validation windows, one validation file per class.
    for done in (plain, strict):
        assert "validation split too small to judge: 2 windows (MIN_VAL_WINDOWS = 30)" in done.stderr, done.stderr
        assert "1 validation file(s) of class 'gear' (MIN_VAL_FILES_PER_CLASS = 2)" in done.stderr
    assert strict.returncode != 0 and "--strict" in strict.stderr
    assert not (root / "strict" / "bundle.json").exists()
    assert plain.returncode == 0, plain.stderr
    assert (root / "plain" / "bundle.json").exists()


def test_calibration_figures_are_printed_and_stored(plain_and_strict):
    root, plain, _ = plain_and_strict
    cal = json.loads((root / "plain" / "bundle.json").read_text())["thresholds"]["calibration"]
    assert 0 <= cal["shift_accuracy"] <= cal["shift_within_one_bin"] <= 1
    assert (f"shift exact {100 * cal['shift_accuracy']:.1f} %, within one bin {100 * cal['shift_within_one_bin']:.1f} %"
            in plain.stdout), plain.stdout
    assert 0 <= cal["classifier_val_accuracy"] <= 1


def test_calibration_counts_a_shift_found_one_bin_off_as_within_one_bin():
    X = np.full((200, 1, 168, 100), -12.0, np.float32)
    X[:, :, REFERENCE_BIN] = 0.0   # one line; a shift j moves it to REFERENCE_BIN + j

    def one_bin_off(windows):   # finds each line, reports it one bin off (inwards at the range's ends)
        k = windows[:, 0, :, 0].argmax(1) - REFERENCE_BIN
        k = np.where(k < SHIFT_RANGE, k + 1, k - 1)
        logits = np.full((len(windows), 2 * SHIFT_RANGE + 1), -10.0, np.float32)
        logits[np.arange(len(windows)), k + SHIFT_RANGE] = 10.0
        return logits

    cal = bundle.calibrate(lambda w: np.full((len(w), 2), 0.5), one_bin_off, X, np.random.default_rng(0))["calibration"]
    assert cal["shift_accuracy"] == 0.0 and cal["shift_within_one_bin"] == 1.0


def test_help_gives_a_sentence_and_the_default_of_every_option():
    done = subprocess.run([sys.executable, "-m", "equivtrain", "byod", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    options = re.split(r"\n  (?=-)", done.stdout.split("options:", 1)[1])[1:]
    names = [o.split()[0].rstrip(",") for o in options]
    assert {"--canon-steps", "--steps", "--eval-every", "--patience", "--strict", "--input-spec", "--label-map",
            "--activation"} <= set(names), names
    for option in options:
        text = " ".join(option.split())
        if text.startswith("-h"):
            continue
        assert "default" in text or "(required)" in text, text
    assert "(default: 100)" in done.stdout and "at least 1500" in done.stdout and "MIN" not in done.stdout


LOG_MEL = {"kind": "log_mel", "sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop_length": 160,
           "n_mels": 64, "f_min": 125.0, "f_max": 7500.0, "mel_scale": "htk", "norm": "none", "power": 1.0,
           "center": False, "log_offset": 0.001, "log": "ln", "frames": 96, "layout": "frames_mels",
           "shape": [1, 1, 96, 64]}


class LogMelNet(torch.nn.Module):
    """A tiny frozen 'pretrained' classifier on [1, 1, 96, 64] log-mel patches with 5 outputs."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 5)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def test_a_pretrained_log_mel_classifier_with_a_label_map_is_bundled_unchanged(tmp_path):
    manifest = tiny_folder(tmp_path, labelled=False)
    frozen = tmp_path / "yamnet_like.onnx"
    torch.manual_seed(0)
    torch.onnx.export(LogMelNet().eval(), torch.randn(1, 1, 96, 64), frozen, opset_version=13,
                      input_names=["audio"], output_names=["logits"])
    (tmp_path / "input.json").write_text(json.dumps(LOG_MEL))
    label_map = {"piano": [0, 1], "organ": [2, 3, 4]}
    (tmp_path / "labels.json").write_text(json.dumps(label_map))
    done = byod("--manifest", manifest, "--out", tmp_path / "bundle", "--classifier", frozen,
                "--input-spec", tmp_path / "input.json", "--label-map", tmp_path / "labels.json", *FAST)
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert written["classes"] == ["piano", "organ"]
    assert written["models"]["classifier"]["input"] == LOG_MEL
    assert written["models"]["classifier"]["output"] == {"activation": "softmax", "classes": label_map}
    assert (tmp_path / "bundle" / "classifier.onnx").read_bytes() == frozen.read_bytes()
    assert 0.5 <= written["thresholds"]["classifier_min_p"] <= 1   # two labels: a max-p of at least 1/2
    assert "classifier on validation audio" in done.stderr


def test_a_label_map_naming_outputs_the_model_lacks_is_refused(tmp_path):
    manifest = tiny_folder(tmp_path, labelled=False)
    frozen = tmp_path / "small.onnx"
    torch.onnx.export(LogMelNet().eval(), torch.randn(1, 1, 96, 64), frozen, opset_version=13,
                      input_names=["audio"], output_names=["logits"])
    (tmp_path / "input.json").write_text(json.dumps(LOG_MEL))
    (tmp_path / "labels.json").write_text(json.dumps({"piano": [0], "organ": [7]}))
    done = byod("--manifest", manifest, "--out", tmp_path / "bundle", "--classifier", frozen,
                "--input-spec", tmp_path / "input.json", "--label-map", tmp_path / "labels.json", *FAST)
    assert done.returncode != 0 and "5 outputs, but the label map names index 7" in done.stderr, done.stderr


def test_resampled_copies_are_the_group_action_and_score_early_stopping(tmp_path):
    # Each copy runs 2^(j/24) times faster: its length shrinks by that factor and its pitch rises
    # by j bins (a 400 Hz tone's FFT peak moves to 400 · 2^(j/24)).
    from equivtrain import byod as byod_module
    rate, t = 16000, np.arange(32000) / 16000
    scipy.io.wavfile.write(tmp_path / "tone.wav", rate, (0.5 * np.sin(2 * np.pi * 400 * t)).astype(np.float32))
    (tmp_path / "copies").mkdir()
    made = byod_module.resampled_copies([tmp_path / "tone.wav"], [0], 3, np.random.default_rng(4), tmp_path / "copies")
    assert len(made) == 3
    for _, path, j in made:
        _, y = scipy.io.wavfile.read(path)
        factor = 2 ** (j / 24)
        assert abs(len(y) - 32000 / factor) <= 2
        peak = np.argmax(np.abs(np.fft.rfft(y * np.hanning(len(y))))) * rate / len(y)
        assert abs(peak - 400 * factor) < 2 * rate / len(y) + 1
    manifest = tiny_folder(tmp_path, labelled=False)
    frozen = tmp_path / "frozen.onnx"
    torch.onnx.export(Classifier(2).eval(), torch.randn(1, 1, 168, 100), frozen, opset_version=13,
                      input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    done = byod("--manifest", manifest, "--out", tmp_path / "bundle", "--classifier", frozen, "--classes", "ok,worn",
                "--canon-steps", 20, "--eval-every", 10, "--resampled-copies", 2)
    assert done.returncode == 0, done.stderr
    assert "windows of resampled validation recordings: shift exact" in done.stdout
    calibration = json.loads((tmp_path / "bundle" / "bundle.json").read_text())["thresholds"]["calibration"]
    assert calibration["resampled_windows"] > 0 and 0 <= calibration["resampled_shift_accuracy"] <= 1


def test_machines_at_several_speeds_give_the_bundle_mode_partial(tmp_path):
    """A manifest whose machine column names each machine at −6, 0 and +6 semitones of speed (no
    labels needed for this part) adds the separator and FixedPose; equivd runs the bundle in mode
    partial. The same machines at one speed each are refused that part, with a warning."""
    subprocess.run([sys.executable, "-m", "equivtrain", "generate", "--out", str(tmp_path / "clips"), "--per-class", "1",
                    "--seconds", "2", "--shifts=-6,0,6"], check=True, capture_output=True)
    manifest = tmp_path / "clips" / "manifest.csv"
    done = byod("--manifest", manifest, "--out", tmp_path / "bundle", "--train-classifier", *FAST,
                "--fixed-part-steps", 2, "--resampled-copies", 0)
    assert done.returncode == 0, done.stderr
    models = json.loads((tmp_path / "bundle" / "bundle.json").read_text())["models"]
    assert {"separator", "fixed_pose"} <= set(models), models
    replayed = subprocess.run([features.equivd_binary(), "replay", str(tmp_path / "clips"), "--bundle",
                               str(tmp_path / "bundle"), "--mode", "partial", "--json"], capture_output=True, text=True)
    assert replayed.returncode == 0, replayed.stderr
    events = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert any(e["type"] == "prediction" and e["fixed_shift_semitones"] is not None for e in events)

    with open(manifest) as f:
        rows = [r for r in csv.DictReader(f) if r["semitones"] == "0"]
    one_speed = tmp_path / "clips" / "one-speed.csv"
    with open(one_speed, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:   # each machine three times at one speed (one goes to validation)
            w.writerow(r)
            for copy in ("again", "third"):
                shutil.copyfile(tmp_path / "clips" / r["path"], tmp_path / "clips" / f"{copy}-{r['path']}")
                w.writerow(dict(r, path=f"{copy}-{r['path']}"))
    done = byod("--manifest", one_speed, "--out", tmp_path / "plain", "--train-classifier", *FAST,
                "--fixed-part-steps", 2, "--resampled-copies", 0)
    assert done.returncode == 0, done.stderr
    assert "mode partial not built" in done.stderr
    assert "separator" not in json.loads((tmp_path / "plain" / "bundle.json").read_text())["models"]
