"""The short soak: about an hour of audio through `equivd run` at 12× real time with
50 clients (35 reading, 10 never reading, 5 connecting and disconnecting). scripts/soak.py does
the work and decides pass or fail; the full 24-hour version is `make soak`."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
EQUIVD = str(pathlib.Path(os.environ.get("EQUIVD", ROOT / ".build/debug/equivd")).resolve())


def test_short_soak(tmp_path):
    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(ROOT / "scripts/soak.py"), "--equivd", EQUIVD, "--audio-hours", "1",
                          "--speed", "12", "--out", str(out)], capture_output=True, text=True, timeout=1200)
    figures = json.loads(out.read_text()) if out.exists() else {}
    assert run.returncode == 0, run.stdout + run.stderr
    assert figures["audio_hours"] >= 1 and figures["healthy_identical"] and figures["healthy_drop_notices"] == 0
    assert figures["rss_drift_mb"] <= 2.0
