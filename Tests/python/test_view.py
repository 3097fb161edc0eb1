"""Pictures (`equivd inspect`, `replay --html`, the clip pages): the PNGs decode (Pillow) to the
window's size and their pixels are matplotlib's viridis of the spectrogram values that
`equivd features` computes; the pages parse as HTML5 (html5lib, strict); hostile file names and
labels come out escaped; a real headless Chromium renders each page non-blank without console
errors."""

import base64
import io
import json
import os
import pathlib
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import html5lib
import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from browser import Browser
from test_pretrained import LOG_MEL, log_mel_bundle, yamnet  # noqa: F401 (a fixture)

ROOT = pathlib.Path(__file__).resolve().parents[2]
EQUIVD = str(pathlib.Path(os.environ.get("EQUIVD", ROOT / ".build/debug/equivd")).resolve())
NS = {"h": "http://www.w3.org/1999/xhtml", "s": "http://www.w3.org/2000/svg"}
VIRIDIS = np.round(255 * colormaps["viridis"](np.arange(256) / 255)[:, :3]).astype(int)


def parse(path):
    """The page as an element tree; html5lib in strict mode refuses any parse error."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=True).parse(pathlib.Path(path).read_bytes())


def png_of(svg_element):
    image = svg_element.find("s:image", NS)
    uri = image.get("href")
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def features(wav, tmp_path):
    out = tmp_path / "windows.npy"
    subprocess.run([EQUIVD, "features", str(wav), "--out", str(out)], check=True, capture_output=True)
    return np.load(out)


def check_pixels(svg, values):
    """Every pixel of the PNG in `svg` is viridis at round(255 (v − lo) / (hi − lo)) of the value
    at its bin and frame (row 0 at the top is the highest bin); ±1 entry where float32 rounding
    in Swift and float64 here may differ, on at most 1 % of pixels."""
    lo, hi = float(svg.get("data-lo")), float(svg.get("data-hi"))
    image = np.asarray(png_of(svg).convert("RGB")).astype(int)
    bins, frames = values.shape
    assert image.shape == (bins, frames, 3)
    index = np.clip(np.round(255 * (values.astype(np.float64) - lo) / (hi - lo)), 0, 255).astype(int)
    expected = VIRIDIS[index[::-1]]
    exact = np.all(image == expected, axis=2)
    near = np.all(np.abs(image - VIRIDIS[np.clip(index[::-1] + 1, 0, 255)]) == 0, axis=2) | np.all(
        np.abs(image - VIRIDIS[np.clip(index[::-1] - 1, 0, 255)]) == 0, axis=2)
    assert np.all(exact | near), f"{np.sum(~(exact | near))} pixels are not viridis of their value"
    assert exact.mean() >= 0.99
    return lo, hi


def test_inspect_pngs_are_viridis_of_the_windows_features_computes(tmp_path):
    wav = ROOT / "Samples" / "gear-speed+5st.wav"
    page = tmp_path / "inspect.html"
    subprocess.run([EQUIVD, "inspect", str(wav), "--at", "1.5", "--html", str(page)], check=True, capture_output=True)
    doc = parse(page)
    section = doc.find(".//h:section", NS)
    seq, shift = int(section.get("data-seq")), int(section.get("data-shift-bins"))
    windows = features(wav, tmp_path)
    received = windows[seq]
    bins = received.shape[0]
    # Undoing a shift of k bins reads bin f + k, the edge bin repeated past the ends.
    canonicalized = received[np.clip(np.arange(bins) + shift, 0, bins - 1)]
    assert shift != 0, "a sample 5 semitones high should be canonicalized by a non-zero shift"
    svgs = {s.get("data-role"): s for s in doc.iter(f"{{{NS['s']}}}svg") if s.get("class") == "spectrogram"}
    lo, hi = check_pixels(svgs["received"], received)
    assert check_pixels(svgs["canonicalized"], canonicalized) == (lo, hi), "both sides share one colour scale"
    both = np.concatenate([received.ravel(), canonicalized.ravel()])
    assert lo == pytest.approx(both.min(), abs=1e-5) and hi == pytest.approx(both.max(), abs=1e-5)
    # The shift chart: one bar per shift, heights summing to the axis (probabilities sum to 1), the chosen one marked.
    bars = [r for r in doc.iter(f"{{{NS['s']}}}rect") if r.get("data-shift") is not None]
    assert len(bars) == 49
    assert sum(float(r.get("height")) for r in bars) == pytest.approx(110, abs=0.5)
    chosen = [int(r.get("data-shift")) for r in bars if r.get("fill") == "#e66101"]
    assert chosen == [shift]
    # The frequency axis names notes and Hz at the C of each octave.
    axis = [t.text for t in svgs["received"].iter(f"{{{NS['s']}}}text") if t.text and "Hz" in t.text]
    assert "C4 262 Hz" in axis and "C7 2093 Hz" in axis


def test_inspect_all_bounds_the_page_and_a_time_outside_is_refused(tmp_path):
    wav = ROOT / "Samples" / "bearing-nominal.wav"
    page = tmp_path / "all.html"
    subprocess.run([EQUIVD, "inspect", str(wav), "--all", "--max-windows", "2", "--html", str(page)], check=True, capture_output=True)
    doc = parse(page)
    assert len(doc.findall(".//h:section", NS)) == 2
    assert "1 more windows left out" in page.read_text()
    proc = subprocess.run([EQUIVD, "inspect", str(wav), "--at", "99", "--html", str(page)], capture_output=True, text=True)
    assert proc.returncode != 0 and "no window holds 99" in proc.stderr


def test_inspect_shows_a_pretrained_models_own_input_before_and_after(yamnet, tmp_path):
    """YAMNet's log-mel patches on the page are those `equivd features --bundle` writes for shift
    0 and for the shift undone (frames × mels there; mel bands up the image here)."""
    bundle = log_mel_bundle(tmp_path / "bundle", yamnet, LOG_MEL["yamnet"])
    wav = ROOT / "Samples" / "imbalance-speed-7st.wav"
    page = tmp_path / "yamnet.html"
    subprocess.run([EQUIVD, "inspect", str(wav), "--at", "1.5", "--bundle", str(bundle), "--html", str(page)],
                   check=True, capture_output=True)
    doc = parse(page)
    section = doc.find(".//h:section", NS)
    seq, shift = int(section.get("data-seq")), int(section.get("data-shift-bins"))
    assert shift != 0
    svgs = {s.get("data-role"): s for s in doc.iter(f"{{{NS['s']}}}svg") if s.get("class") == "model-input"}
    scales = []
    for role, k in (("model-received", 0), ("model-canonicalized", shift)):
        out = tmp_path / f"{role}.npy"
        subprocess.run([EQUIVD, "features", str(wav), "--bundle", str(bundle), f"--shift-bins={k}", "--out", str(out)],
                       check=True, capture_output=True)
        patch = np.load(out)[seq].reshape(96, 64)
        scales.append(check_pixels(svgs[role], patch.T))
    assert scales[0] == scales[1], "before and after share one colour scale"


def hostile_bundle(tmp_path):
    """The bundled models with a class renamed to markup: labels reach the pages from bundles."""
    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "Models", bundle)
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["classes"][manifest["classes"].index("gear")] = HOSTILE_LABEL
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    return bundle


HOSTILE_LABEL = "<script>alert(1)</script><img src=x onerror=alert(1)>\"'&"
HOSTILE_NAME = "<script>alert(2)<svg onload=alert('x')>\"quoted\".wav"  # a file name cannot hold "/"


def test_hostile_file_names_and_labels_come_out_escaped(tmp_path):
    bundle = hostile_bundle(tmp_path)
    wav = tmp_path / HOSTILE_NAME
    shutil.copy(ROOT / "Samples" / "gear-nominal.wav", wav)
    csv = tmp_path / "labels.csv"
    csv.write_text('path,label\n"' + HOSTILE_NAME.replace('"', '""') + '","' + HOSTILE_LABEL.replace('"', '""') + '"\n')
    inspect, report = tmp_path / "inspect.html", tmp_path / "report.html"
    subprocess.run([EQUIVD, "inspect", str(wav), "--bundle", str(bundle), "--html", str(inspect)], check=True, capture_output=True)
    subprocess.run([EQUIVD, "replay", str(csv), "--bundle", str(bundle), "--quiet", "--html", str(report),
                    "--classifier-min-p", "0.99"], check=True, capture_output=True)
    for page in (inspect, report):
        text = page.read_text()
        assert "<svg onload" not in text and "<img" not in text and "<script" not in text, \
            f"{page.name}: markup from a name or label got through"
        doc = parse(page)
        assert doc.find(".//h:script", NS) is None and doc.find(".//h:img", NS) is None
        assert not any(e.get("onload") or e.get("onerror") for e in doc.iter())
        visible = "".join(doc.itertext())
        assert HOSTILE_LABEL in visible, f"{page.name}: the label is not shown as text"
        assert HOSTILE_NAME in visible, f"{page.name}: the file name is not shown as text"


def test_replay_report_matches_the_replay_summary(tmp_path):
    report, summary = tmp_path / "report.html", tmp_path / "summary.json"
    proc = subprocess.run([EQUIVD, "replay", str(ROOT / "Samples" / "labels.csv"), "--json", "--report", str(summary),
                           "--html", str(report), "--html-views", "3"], check=True, capture_output=True, text=True)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    s = json.loads(summary.read_text())
    doc = parse(report)
    text = report.read_text()
    assert f"{s['accuracy']:.1f} %" in text
    table = doc.find(".//h:table[@class='confusion']", NS)
    rows = table.findall(".//h:tr", NS)
    header = [c.text for c in rows[0]][1:]
    for row in rows[1:]:
        expected = row[0].text
        for name, cell in zip(header, row[1:]):
            key = {"abstained": "(none)", "idle": "(idle)"}.get(name, name)
            assert int(cell.text) == s["confusion"][expected].get(key, 0), (expected, name)
    timelines = [e for e in doc.iter(f"{{{NS['s']}}}svg") if e.get("class") == "timeline"]
    assert len(timelines) == s["files"] == 19
    labels = {r[0]: r[1] for r in (l.split(",")[:2] for l in (ROOT / "Samples/labels.csv").read_text().splitlines()[1:])}
    flagged = [e for e in events if e["fallback"] == "abstain" or e["label"] != labels[pathlib.Path(e["source"]).name]]
    listed = [r for t in doc.findall(".//h:table", NS) if t.get("class") != "confusion" for r in t.findall(".//h:tr", NS)[1:]
              if len(r) == 3]
    assert len(listed) == len(flagged) > 3
    assert len(doc.findall(".//h:section", NS)) == 3, "--html-views bounds the inline views"
    assert f"{len(flagged) - 3} wrong or abstained windows are listed without their view" in text


def non_blank(png_path):
    image = np.asarray(Image.open(png_path).convert("RGB"))
    return len(np.unique(image.reshape(-1, 3), axis=0))


def test_chromium_renders_the_inspect_and_replay_pages(tmp_path):
    inspect, report = tmp_path / "inspect.html", tmp_path / "report.html"
    subprocess.run([EQUIVD, "inspect", str(ROOT / "Samples/gear-speed+5st.wav"), "--at", "1.5", "--html", str(inspect)],
                   check=True, capture_output=True)
    subprocess.run([EQUIVD, "replay", str(ROOT / "Samples/labels.csv"), "--quiet", "--html", str(report), "--html-views", "4"],
                   check=True, capture_output=True)
    browser = Browser()
    try:
        for page in (inspect, report):
            browser.open(page.as_uri())
            assert browser.errors() == [], f"{page.name}: {browser.errors()}"
            # Every embedded PNG decoded in the browser to its real size.
            sizes = browser.evaluate("""Promise.all([...document.querySelectorAll('svg image')].map(i => {
                const im = new Image(); im.src = i.getAttribute('href');
                return im.decode().then(() => [im.naturalWidth, im.naturalHeight]); }))""")
            # Each window view shows the received and canonicalized windows: 100 frames x 168 bands.
            assert sizes.count([100, 168]) >= 2 and all(w > 0 and h > 0 for w, h in sizes), f"{page.name}: {sizes}"
            shot = tmp_path / (page.stem + ".png")
            browser.screenshot(shot)
            assert non_blank(shot) > 200, f"{page.name} rendered nearly blank"
        assert browser.errors() == []
    finally:
        browser.close()


def listening(port, timeout=20):
    """Waits for a daemon's HTTP listener on `port` to answer /healthz."""
    from test_faults import http_get
    deadline = time.monotonic() + timeout
    while True:
        try:
            if http_get(port, "/healthz")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the HTTP listener did not come up"
        time.sleep(0.2)


def test_chromium_follows_the_live_page_of_a_running_daemon(tmp_path):
    """A daemon plays gear then imbalance in a loop, in real time, with the HTTP listener on; the
    live page in Chromium shows each as its label changes (pushed over /events), draws the
    timeline, and loads the latest window's two PNGs; no console errors. Other methods than GET
    are refused, and a non-loopback address needs the config to say so."""
    from test_faults import free_port, http_get
    from test_service import read_wav, write_wav
    wav = tmp_path / "gear-then-imbalance.wav"
    write_wav(wav, np.concatenate([read_wav(ROOT / "Samples/gear-nominal.wav"), read_wav(ROOT / "Samples/imbalance-nominal.wav")]))
    port = free_port()
    config = tmp_path / "live.toml"
    config.write_text(f'[source]\nkind = "file"\nfile = "{wav}"\nloop = true\n[model]\nbundle = "{ROOT / "Models"}"\n'
                      f'[socket]\npath = "{tmp_path / "s.sock"}"\n[http]\nlisten = "127.0.0.1:{port}"\n')
    daemon = subprocess.Popen([EQUIVD, "run", "--config", str(config)])
    browser = None
    try:
        listening(port)
        live = tmp_path / "live.html"
        live.write_text(http_get(port, "/")[1])
        page = parse(live)  # strict HTML5: no parse errors
        assert [e for e in page.iter() if e.get("id") == "label"], "the live page has its label field"
        browser = Browser()
        browser.open(f"http://127.0.0.1:{port}/", settle=0.2)
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ({"gear", "imbalance"} <= set(seen) and len(seen) >= 3):
            label = browser.evaluate("document.getElementById('label').textContent")
            if label not in ("–", "uncertain") and (not seen or seen[-1] != label):
                seen.append(label)
            time.sleep(0.2)
        assert {"gear", "imbalance"} <= set(seen) and len(seen) >= 3, f"labels the page showed: {seen}"
        sizes = browser.evaluate("[...document.querySelectorAll('figure img')].map(i => [i.naturalWidth, i.naturalHeight])")
        assert sizes == [[100, 168], [100, 168]]
        assert browser.evaluate("document.querySelectorAll('#timeline rect').length") > 5
        assert browser.evaluate("document.getElementById('health').textContent") == "ok"
        assert browser.errors() == [], browser.errors()
        browser.screenshot(tmp_path / "live.png")
        assert non_blank(tmp_path / "live.png") > 100
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 405
        assert daemon.poll() is None
    finally:
        if browser:
            browser.close()
        daemon.terminate()
        daemon.wait(timeout=10)
    # A non-loopback listener only when asked for explicitly.
    config.write_text(config.read_text().replace(f"127.0.0.1:{port}", f"0.0.0.0:{port}"))
    check = subprocess.run([EQUIVD, "check-config", str(config)], capture_output=True, text=True)
    assert check.returncode != 0 and "http.listen" in check.stderr and "allow_non_loopback" in check.stderr, check.stderr


def test_clip_pages_sit_beside_their_clips_within_the_quota(tmp_path):
    """Every window abstains (classifier_min_p 0.999); each clip's inspect page is written beside
    it, and the spool's quota counts the pages: WAV and HTML together stay under it, oldest first."""
    from test_service import status, wait_until
    spool, sock, quota = tmp_path / "clips", tmp_path / "s.sock", 400_000
    config = tmp_path / "clips.toml"
    config.write_text(f'[source]\nkind = "file"\nfile = "{ROOT / "Samples/normal-nominal.wav"}"\nloop = true\nspeed = 4\n'
                      f'[model]\nbundle = "{ROOT / "Models"}"\nclassifier_min_p = 0.999\n[socket]\npath = "{sock}"\n'
                      f'[spool]\ndirectory = "{spool}"\nquota_bytes = {quota}\n')
    daemon = subprocess.Popen([EQUIVD, "run", "--config", str(config)])
    try:
        wait_until(lambda: daemon.poll() is None and sock.exists() and status(sock)["clips"] >= 8, 60, "eight clips")
        files = sorted(spool.iterdir())
        stems = {f.stem for f in files}
        assert sum(f.stat().st_size for f in files) <= quota
        assert 2 <= len(stems) < 8, "the oldest were removed to stay within the quota"
        for stem in sorted(stems)[:-1]:  # the newest may be between its two files
            assert (spool / f"{stem}.wav").exists() and (spool / f"{stem}.html").exists(), stem
            section = parse(spool / f"{stem}.html").find(".//h:section", NS)
            assert section.get("data-seq") == str(int(stem.split("-")[1])) and section.get("data-fallback") == "abstain"
        assert daemon.poll() is None
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_live_page_shows_a_hostile_label_as_text(tmp_path):
    """A bundle whose class name is markup, served live: the page shows the name as text, runs
    none of it (no script element or handler added, no console error)."""
    from test_faults import free_port
    port = free_port()
    config = tmp_path / "live.toml"
    config.write_text(f'[source]\nkind = "file"\nfile = "{ROOT / "Samples/gear-nominal.wav"}"\nloop = true\nspeed = 2\n'
                      f'[model]\nbundle = "{hostile_bundle(tmp_path)}"\nclassifier_min_p = 0\n'
                      f'[socket]\npath = "{tmp_path / "s.sock"}"\n[http]\nlisten = "127.0.0.1:{port}"\n')
    daemon = subprocess.Popen([EQUIVD, "run", "--config", str(config)])
    browser = None
    try:
        listening(port)
        browser = Browser()
        browser.open(f"http://127.0.0.1:{port}/", settle=0.2)
        deadline = time.monotonic() + 30
        while browser.evaluate("document.getElementById('label').textContent") != HOSTILE_LABEL:
            assert time.monotonic() < deadline, "the hostile label never showed"
            time.sleep(0.2)
        assert browser.evaluate("document.querySelectorAll('script').length") == 1, "only the page's own script"
        assert browser.evaluate("document.querySelectorAll('img[onerror], [onload]').length") == 0
        assert browser.errors() == [], browser.errors()
    finally:
        if browser:
            browser.close()
        daemon.terminate()
        daemon.wait(timeout=10)
