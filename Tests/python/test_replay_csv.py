"""`equivd replay` reads a labels CSV as RFC 4180 writes it: quoted fields with commas, quotes and
line breaks, blank lines between records; a broken file is refused naming the file and line."""

import json
import shutil
import subprocess

from test_service import EQUIVD, ROOT


def test_quoted_fields_and_blank_lines(tmp_path):
    shutil.copy(ROOT / "Samples/gear-nominal.wav", tmp_path / 'gear, "nominal".wav')
    shutil.copy(ROOT / "Samples/bearing-nominal.wav", tmp_path / "bearing.wav")
    (tmp_path / "labels.csv").write_text(
        'path,label,note\n"gear, ""nominal"".wav",gear,"two\nlines"\n\nbearing.wav,"bearing",\n')
    report = tmp_path / "report.json"
    run = subprocess.run([EQUIVD, "replay", str(tmp_path / "labels.csv"), "--quiet", "--report", str(report)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    summary = json.loads(report.read_text())
    assert summary["files"] == 2
    assert set(summary["confusion"]) == {"gear", "bearing"}
    assert summary["labelled_windows"] == summary["windows"] > 0


def test_an_unclosed_quote_names_the_file_and_line(tmp_path):
    (tmp_path / "labels.csv").write_text('path,label\n\nx.wav,gear\n"y.wav,bearing\n')
    run = subprocess.run([EQUIVD, "replay", str(tmp_path / "labels.csv")], capture_output=True, text=True)
    assert run.returncode != 0
    assert f"{tmp_path / 'labels.csv'}:4: a quoted field is never closed" in run.stderr


def test_replay_goes_on_past_bad_files_and_exits_65(tmp_path):
    (tmp_path / "text.wav").write_text("not audio")
    short = tmp_path / "short.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(short), "trim", "0", "0.2"], check=True)
    (tmp_path / "labels.csv").write_text(
        f'path,label\n{ROOT / "Samples/gear-nominal.wav"},gear\ntext.wav,gear\nshort.wav,gear\n'
        f'{ROOT / "Samples/bearing-nominal.wav"},bearring\n')
    run = subprocess.run([EQUIVD, "replay", str(tmp_path / "labels.csv"), "--report", str(tmp_path / "r.json")],
                         capture_output=True, text=True)
    assert run.returncode == 65, run.stderr
    assert "Usage:" not in run.stderr
    assert f"{tmp_path / 'text.wav'}" in run.stderr, "the bad file is named"
    assert "short.wav: 0.200 s is shorter than one window (1.502 s): padded with silence to one window" in run.stderr
    assert 'label "bearring" is not one of the bundle\'s classes' in run.stderr
    assert "1 of 4 files could not be read" in run.stderr
    rows = [l for l in run.stdout.splitlines()[1:] if l.strip()]
    assert {l.split()[0] for l in rows} == {"gear-nominal.wav", "short.wav", "bearing-nominal.wav"}, "the files after the bad one still ran"
    assert [l.split()[-1] for l in rows if l.startswith("short.wav")] == ["idle"], "the padded clip gives one (silent) window"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["idle_labelled_windows"] == 1, "the silent window is left out of accuracy, as training leaves it out"
    assert report["labelled_windows"] == report["windows"] - 1
    assert report["confusion"]["gear"]["(idle)"] == 1
