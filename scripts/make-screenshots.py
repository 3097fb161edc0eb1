#!/usr/bin/env python3
"""Remakes the screenshots in docs/images (README, "Pictures"): the inspect page of a sample
played 5 semitones fast, the replay report of the bundled samples, and the live page following a
daemon that plays gear then imbalance. Drawn by the headless Chromium the tests use, quantized to
256 colours so they stay small.
    .venv/bin/python scripts/make-screenshots.py [--equivd .build/release/equivd]
"""
import argparse
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "Tests/python"))
from browser import Browser  # noqa: E402
from test_service import read_wav, write_wav  # noqa: E402


def shoot(browser, url, out, height, settle=1.0):
    browser.open(url, settle=settle)
    raw = out.with_suffix(".raw.png")
    browser.screenshot(raw, full_page=False)
    image = Image.open(raw).convert("RGB")
    image.crop((0, 0, image.width, min(height, image.height))).quantize(256).save(out, optimize=True)
    raw.unlink()
    print(f"{out.relative_to(ROOT)}: {out.stat().st_size // 1024} KiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--equivd", default=str(ROOT / ".build/release/equivd"))
    args = parser.parse_args()
    images = ROOT / "docs/images"
    images.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        subprocess.run([args.equivd, "inspect", str(ROOT / "Samples/gear-speed+5st.wav"), "--at", "1.5",
                        "--html", str(tmp / "inspect.html")], check=True)
        subprocess.run([args.equivd, "replay", str(ROOT / "Samples/labels.csv"), "--quiet", "--html-views", "5",
                        "--html", str(tmp / "report.html")], check=True)
        wav = tmp / "gear-then-imbalance.wav"
        write_wav(wav, np.concatenate([read_wav(ROOT / "Samples/gear-nominal.wav"), read_wav(ROOT / "Samples/imbalance-nominal.wav")]))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        (tmp / "live.toml").write_text(f'[source]\nkind = "file"\nfile = "{wav}"\nloop = true\n[model]\nbundle = "{ROOT / "Models"}"\n'
                                       f'[socket]\npath = "{tmp / "s.sock"}"\n[http]\nlisten = "127.0.0.1:{port}"\n')
        daemon = subprocess.Popen([args.equivd, "run", "--config", str(tmp / "live.toml")])
        browser = Browser(width=1000, height=1000)
        try:
            shoot(browser, (tmp / "inspect.html").as_uri(), images / "inspect.png", 1000)
            shoot(browser, (tmp / "report.html").as_uri(), images / "replay-report.png", 1000)
            for _ in range(50):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    break
                except OSError:
                    time.sleep(0.2)
            shoot(browser, f"http://127.0.0.1:{port}/", images / "live.png", 760, settle=20)
        finally:
            browser.close()
            daemon.terminate()
            daemon.wait(timeout=10)


if __name__ == "__main__":
    main()
