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
