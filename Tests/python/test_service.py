"""`equivd run` end to end: real alsa-lib capture through the `file` PCM plugin, the real
Unix socket, `equivctl`, the notify protocol on a socket of the test's own, reload and shutdown.

The capture device reads a FIFO that a pacer thread fills one ALSA period at a time, faster than
real time but paced, as a sound card would; after the sample it sends silence. What the daemon
publishes must match `equivd replay` of the same samples window by window.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import wave

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("EQUIVD", ROOT / ".build/debug/equivd")).resolve().parent
EQUIVD, EQUIVCTL = str(BIN / "equivd"), str(BIN / "equivctl")
RATE, PERIOD = 16000, 1600
# Times real time for paced audio; sanitizer runs (make sanitize) lower it, being 5-10x slower.
SPEED = float(os.environ.get("EQUIVD_TEST_SPEED", 6))
SEGMENTS = ["bearing-nominal.wav", "normal-nominal.wav", "gear-speed+5st.wav", "imbalance-speed-7st.wav",
            "normal-speed+5st.wav", "looseness-nominal.wav"]


def read_wav(path):
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def write_wav(path, samples):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())


class Pacer(threading.Thread):
    """Writes `samples` into the FIFO one period at a time at `speed`× real time, then silence."""

    def __init__(self, fifo, samples, speed):
        super().__init__(daemon=True)
        self.fifo, self.samples, self.speed, self.stop = fifo, samples, speed, threading.Event()
        self.sent_seconds = 0.0

    def run(self):
        with open(self.fifo, "wb", buffering=0) as f:
            start, n = time.monotonic(), 0
            silence = bytes(2 * PERIOD)
            while not self.stop.is_set():
                chunk = self.samples[n * PERIOD:(n + 1) * PERIOD]
                data = chunk.astype("<i2").tobytes().ljust(2 * PERIOD, b"\0") if len(chunk) else silence
                try:
                    f.write(data)  # < PIPE_BUF: atomic, so every read sees whole periods
                except BrokenPipeError:
                    return
                n += 1
                self.sent_seconds = n * PERIOD / RATE
                time.sleep(max(0.0, start + n * PERIOD / RATE / self.speed - time.monotonic()))


class NotifySocket:
    """systemd's side of sd_notify: collects the datagrams."""

    def __init__(self, path):
        self.path, self.messages = str(path), []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                continue
            except OSError:
                return

    def wait_for(self, text, timeout, after=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in m for m in self.messages[after:]):
                return True
            time.sleep(0.05)
        return False


class StreamLines(threading.Thread):
    """Reads a subprocess's output line by line as it comes (so its pipe never fills), each line
    through `parse`."""

    def __init__(self, stream, parse):
        super().__init__(daemon=True)
        self.stream, self.parse, self.items = stream, parse, []
        self.start()

    def run(self):
        for line in self.stream:
            self.items.append(self.parse(line))


class Lines(StreamLines):
    """A stream of JSON events (equivctl tail --json)."""

    def __init__(self, stream):
        super().__init__(stream, json.loads)

    def of(self, kind):
        return [e for e in self.items if e["type"] == kind]


class LogLines(StreamLines):
    """A daemon's stderr: its log."""

    def __init__(self, stream):
        super().__init__(stream, lambda line: line.rstrip("\n"))

    @property
    def lines(self):
        return self.items

    def having(self, text):
        return [l for l in self.items if text in l]


def tail_json(sock):
    """`equivctl tail --json` on `sock`, without reconnecting; its events as they arrive."""
    proc = subprocess.Popen([EQUIVCTL, "tail", "--json", "--no-reconnect", "--socket", str(sock)],
                            stdout=subprocess.PIPE, text=True)
    return proc, Lines(proc.stdout)


def status(sock):
    """`equivctl status --json` on `sock`."""
    return json.loads(subprocess.run([EQUIVCTL, "status", "--json", "--socket", str(sock)],
                                     capture_output=True, text=True, check=True).stdout)


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def conv_kernels():
    """The convolution kernels this CPU runs (EQUIVD_CONV_ISA names), widest first."""
    flags = set()
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    kernels = ["portable"]
    if {"avx2", "fma"} <= flags:
        kernels.insert(0, "avx2")
        if "avx512f" in flags:
            kernels.insert(0, "avx512")
    return kernels


class LiveService:
    """`equivd run` capturing from a file-plugin device that a Pacer feeds at `speed`× real time
    (the six SEGMENTS, then silence), with the convolution kernel `kernel`, a notify socket, clip
    spooling, and a copy of the bundle in `folder`."""

    def __init__(self, folder, samples, speed, kernel):
        folder.mkdir(parents=True, exist_ok=True)
        self.tmp, self.speed, self.kernel = folder, speed, kernel
        self.tail = self.stalled = None
        fifo = folder / "capture.fifo"
        os.mkfifo(fifo)
        (folder / "asound.conf").write_text(
            f'pcm.equivtest {{ type file; slave.pcm {{ type null }}; file "/dev/null"; infile "{fifo}"; format "raw" }}\n')
        self.bundle = folder / "bundle"
        shutil.copytree(ROOT / "Models", self.bundle)
        self.sock = str(folder / "equivd.sock")
        (folder / "equivd.toml").write_text(f"""
[source]
kind = "alsa"
device = "equivtest"
alsa_config = "{folder / 'asound.conf'}"
format = "S16_LE"
[model]
bundle = "{self.bundle}"
[socket]
path = "{self.sock}"
status_interval = 0.2
client_buffer_events = 4
send_buffer_bytes = 4096
[spool]
directory = "{folder / 'clips'}"
context_seconds = 0.5
""")
        self.env = dict(os.environ, EQUIVD_CONV_ISA=kernel)
        self.notify = NotifySocket(folder / "notify")
        self.daemon = subprocess.Popen([EQUIVD, "run", "--config", str(folder / "equivd.toml")],
                                       env=dict(self.env, NOTIFY_SOCKET=self.notify.path, WATCHDOG_USEC="1000000"),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pacer = Pacer(fifo, samples, speed)
        self.pacer.start()

    def watch(self, until_seq):
        """Starts `equivctl tail --json` and a client that never reads; returns the tail's events
        once it has seen window `until_seq`, or once the audio for it has been sent and the daemon
        reports a gap (lost audio means fewer windows, or none when gaps come too often)."""
        assert self.notify.wait_for("READY=1", 30), f"no READY=1; stderr: {self.daemon.stderr.read() if self.daemon.poll() is not None else ''}"
        self.tail = subprocess.Popen([EQUIVCTL, "tail", "--json", "--socket", self.sock], stdout=subprocess.PIPE, text=True)
        lines = Lines(self.tail.stdout)
        self.stalled = socket.socket(socket.AF_UNIX)
        self.stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        self.stalled.connect(self.sock)
        sent = (until_seq + 4) * 0.5  # seconds of audio the windows up to until_seq need
        wait_until(lambda: (lines.of("prediction") and lines.of("prediction")[-1]["seq"] >= until_seq)
                   or (self.pacer.sent_seconds > sent and status(self.sock)["gaps"] > 0), 120, "predictions")
        return lines

    def stop(self):
        if self.tail:
            self.tail.terminate()
            self.tail.wait()
        if self.stalled:
            self.stalled.close()
        self.pacer.stop.set()
        if self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()
        self.notify.sock.close()


def looping_daemon(folder, sock, sample="gear-nominal.wav", speed=1, extra="", wrapper=(), mode="topk"):
    """`equivd run` playing a bundled sample (or any audio file) in a loop at `speed`× real time in
    `mode` on socket `sock`, configured by a file in `folder` (readable by anyone, for the tests
    that switch users); `extra` adds settings (TOML keys after [socket], or further sections);
    `wrapper` runs it under another command."""
    config = pathlib.Path(folder) / "loop.toml"
    config.write_text(f'[source]\nkind = "file"\nfile = "{ROOT / "Samples" / sample}"\nloop = true\nspeed = {speed}\n'
                      f'[model]\nbundle = "{ROOT / "Models"}"\nmode = "{mode}"\n[socket]\npath = "{sock}"\n{extra}')
    config.chmod(0o644)
    return subprocess.Popen([*wrapper, EQUIVD, "run", "--config", str(config)])


def replay_predictions(wav, env=None):
    out = subprocess.run([EQUIVD, "replay", str(wav), "--json"], check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("kernel", conv_kernels())
def test_live_service_end_to_end(tmp_path, kernel):
    """Live capture publishes what replay of the same audio decides, window by window, with each
    convolution kernel the CPU runs. A PC too slow for the test's pace loses audio: the daemon
    then says so (`gap_before_ms`, `status.gaps`) and the test retries at half the pace, since
    only unbroken audio can match the replay."""
    samples = np.concatenate([read_wav(ROOT / "Samples" / name) for name in SEGMENTS])
    write_wav(tmp_path / "input.wav", samples)
    expected = replay_predictions(tmp_path / "input.wav", dict(os.environ, EQUIVD_CONV_ISA=kernel))
    assert len(expected) >= 20
    speed = SPEED
    while True:
        s = LiveService(tmp_path / f"{speed:g}x", samples, speed, kernel)
        try:
            lines = s.watch(until_seq=len(expected) + 10)
            live = lines.of("prediction")
            now = status(s.sock)
            gaps = [p for p in live if p["gap_before_ms"] > 0]
            # Only dropped windows and lost audio can break the stream; both are reported.
            broken = now["gaps"] or now["dropped_windows"] or [p["seq"] for p in live] != list(range(live[0]["seq"], live[0]["seq"] + len(live)))
            assert not gaps or now["gaps"] > 0, "a gap a prediction carries is counted"
            assert (now["gaps"] > 0) == (now["dropped_samples"] > 0)
            if not broken:
                check_live_service(s, expected, lines)
                return
            print(f"{kernel}: at {speed:g}x real time the daemon fell behind ({now['gaps']} gaps, "
                  f"{now['dropped_samples']} samples, {now['dropped_windows']} windows lost): retrying at {speed / 2:g}x")
            assert speed > 1, "the daemon cannot keep real time"
            speed /= 2
        finally:
            s.stop()


def test_live_mode_partial_publishes_what_replay_decides(tmp_path):
    """Mode partial keeps nothing from one window to the next, so live capture decides each window
    as replay of the same audio does, the fixed part's shift included."""
    wav = tmp_path / "input.wav"
    write_wav(wav, np.concatenate([read_wav(ROOT / "Samples" / name) for name in SEGMENTS]))
    replayed = subprocess.run([EQUIVD, "replay", str(wav), "--json", "--mode", "partial"], check=True, capture_output=True,
                              text=True).stdout
    expected = [e for e in map(json.loads, replayed.splitlines()) if e["type"] == "prediction"]
    sock = tmp_path / "s.sock"
    daemon = looping_daemon(tmp_path, sock, wav, speed=2, mode="partial")
    try:
        wait_until(sock.exists, 60, "the socket")
        tail, lines = tail_json(sock)
        wait_until(lambda: any(p["seq"] >= len(expected) for p in lines.of("prediction")), 60, "one pass of the file")
        tail.terminate()
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    compared = 0
    for p in lines.of("prediction"):
        if p["seq"] < len(expected) - 1:   # the last window of a pass may reach into the next one
            e = expected[p["seq"]]
            assert (p["label"], p["fallback"], p["shift_semitones"], p["fixed_shift_semitones"]) == \
                (e["label"], e["fallback"], e["shift_semitones"], e["fixed_shift_semitones"]), f"window {p['seq']}"
            assert abs(p["p"] - e["p"]) < 1e-4
            compared += 1
    assert compared >= len(expected) - 4 and all(e["fixed_shift_semitones"] is not None for e in expected)


def check_live_service(s, expected, lines):
    assert os.stat(s.sock).st_mode & 0o777 == 0o660

    # Every prediction, in order, with the labels the replay of the same audio gives.
    live = lines.of("prediction")
    first = live[0]["seq"]
    assert [p["seq"] for p in live] == list(range(first, first + len(live))), "a prediction was lost or reordered"
    assert first <= 2, "tail connects right after READY=1, within the first second of audio"
    for p in live:
        assert p["gap_before_ms"] == 0
        if p["seq"] < len(expected):
            e = expected[p["seq"]]
            assert (p["label"], p["fallback"]) == (e["label"], e["fallback"]), f"window {p['seq']}"
            assert abs(p["p"] - e["p"]) < 1e-4 and p["shift_semitones"] == e["shift_semitones"]
            assert abs(p["stream_start"] - e["stream_start"]) < 1e-9
        elif p["seq"] >= len(expected) + 4:
            assert p["fallback"] == "idle", f"window {p['seq']}: silence after the sample is idle"
    assert {p["source"] for p in live} == {"equivtest"}

    # Abstained windows were spooled as WAV clips that the events name.
    clips = [p["clip"] for p in live if p.get("clip")]
    assert len(clips) == sum(p["fallback"] == "abstain" for p in live) > 0
    with wave.open(clips[0]) as w:
        assert w.getframerate() == RATE and w.getnframes() == int(0.5 * RATE) + 99 * 160 + 8192
    # Each clip has its inspect page beside it: the window it names, abstained.
    import html5lib
    for p in live:
        if p.get("clip"):
            page = html5lib.parse(pathlib.Path(p["clip"]).with_suffix(".html").read_bytes(), namespaceHTMLElements=False)
            section = page.find(".//section")
            assert (int(section.get("data-seq")), section.get("data-fallback")) == (p["seq"], "abstain")

    # The stalled client is counted (status shows its drops), the reader lost nothing.
    wait_until(lambda: any(c["dropped"] > 0 for c in lines.of("status")[-1]["clients"]), 60, "the stalled client's drops")
    now = status(s.sock)
    dropped = sorted(c["dropped"] for c in now["clients"])
    assert len(dropped) == 3 and dropped[:2] == [0, 0] and dropped[2] > 0  # tail, this status request, stalled
    assert now["dropped_windows"] == 0 and now["dropped_samples"] == 0 and now["gaps"] == 0
    assert not [e for e in lines.of("error") if e["code"] == "events_dropped"], "tail kept up: it must not be told of drops"

    # The watchdog is fed while the pipeline makes progress; STATUS= keeps systemctl status current.
    assert s.notify.wait_for("WATCHDOG=1", 5)
    assert s.notify.wait_for("STATUS=serving equivtest: ", 5)

    # SIGHUP with a corrupt bundle: an error for everyone, the old models keep serving.
    classifier = s.bundle / "classifier.onnx"
    classifier.write_bytes(classifier.read_bytes()[:1000])
    mark, before = len(s.notify.messages), len(lines.of("prediction"))
    s.daemon.send_signal(signal.SIGHUP)
    wait_until(lambda: lines.of("error") and lines.of("error")[-1]["code"] == "reload_failed", 30, "reload_failed")
    assert "classifier.onnx" in lines.of("error")[-1]["message"]
    assert s.notify.wait_for("RELOADING=1", 5, after=mark) and s.notify.wait_for("READY=1", 5, after=mark)
    wait_until(lambda: len(lines.of("prediction")) >= before + 10, 30, "predictions after the failed reload")
    assert s.daemon.poll() is None
    ctl = subprocess.run([EQUIVCTL, "reload", "--socket", s.sock], capture_output=True, text=True)
    assert ctl.returncode == 1 and "classifier.onnx" in ctl.stdout

    # SIGTERM: exits 0 within 2 s and removes the socket; tail waits for a restart.
    started = time.monotonic()
    s.daemon.send_signal(signal.SIGTERM)
    assert s.daemon.wait(timeout=5) == 0
    assert time.monotonic() - started < 2.0
    assert not os.path.exists(s.sock)
    assert s.notify.wait_for("STOPPING=1", 1)
    assert s.tail.poll() is None, "tail keeps waiting for the daemon to come back"


def test_equivctl_exit_codes_without_a_daemon(tmp_path):
    missing = subprocess.run([EQUIVCTL, "status", "--socket", str(tmp_path / "none.sock")], capture_output=True, text=True)
    assert missing.returncode == 69 and "not running" in missing.stderr
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "stale.sock"))  # a socket file nobody listens on
    refused = subprocess.run([EQUIVCTL, "reload", "--socket", str(tmp_path / "stale.sock")], capture_output=True, text=True)
    assert refused.returncode == 69 and "nobody listening" in refused.stderr
    once = subprocess.run([EQUIVCTL, "tail", "--no-reconnect", "--socket", str(tmp_path / "none.sock")], capture_output=True, text=True)
    assert once.returncode == 69


def test_bad_configuration_names_the_key_and_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[socket]\npath = "/tmp/x.sock"\nstatus_intervall = 3\n')
    run = subprocess.run([EQUIVD, "run", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert f"{config}:3: socket.status_intervall: unknown key" in run.stderr


def test_check_config_validates_the_file_and_its_bundle_without_starting(tmp_path):
    shipped = subprocess.run([EQUIVD, "check-config", str(ROOT / "Config/equivd.toml")], capture_output=True, text=True,
                             cwd=ROOT, timeout=60)
    assert shipped.returncode == 0, shipped.stderr
    assert "valid; bundle Models (canonicalizer " in shipped.stdout and "classifier " in shipped.stdout

    bad_key = tmp_path / "bad.toml"
    bad_key.write_text('[socket]\npath = "/tmp/x.sock"\nstatus_intervall = 3\n')
    run = subprocess.run([EQUIVD, "check-config", str(bad_key)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 78 and f"{bad_key}:3: socket.status_intervall: unknown key" in run.stderr

    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "Models", bundle)
    (bundle / "classifier.onnx").write_bytes((bundle / "classifier.onnx").read_bytes()[:1000])
    broken = tmp_path / "broken.toml"
    broken.write_text(f'[model]\nbundle = "{bundle}"\n[socket]\npath = "{tmp_path / "never.sock"}"\n')
    run = subprocess.run([EQUIVD, "check-config", str(broken)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 78 and "classifier.onnx" in run.stderr and "models.classifier.sha256" in run.stderr
    assert not (tmp_path / "never.sock").exists(), "the check opens nothing"


def test_file_source_ends_the_run_and_removes_the_socket(tmp_path):
    sock = tmp_path / "s.sock"
    daemon = subprocess.Popen([EQUIVD, "run", "--file", str(ROOT / "Samples/gear-nominal.wav"), "--pace", "fast",
                               "--socket", str(sock)], stderr=subprocess.PIPE, text=True)
    assert daemon.wait(timeout=60) == 0, daemon.stderr.read()
    assert not sock.exists()


def test_systemd_unit_verifies_and_is_hardened(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze missing: scripts/install-deps.sh installs systemd")
    # The unit as shipped, with ExecStart pointing at this build (verify checks that it exists)
    # and without its man pages, which only the package installs (make test-package verifies the
    # installed unit with them).
    unit = tmp_path / "equivd.service"
    shipped = (ROOT / "systemd/equivd.service").read_text()
    assert "ExecStart=/usr/bin/equivd run" in shipped and "LimitNOFILE=" in shipped
    unit.write_text(shipped.replace("/usr/bin/equivd", EQUIVD).replace("man:equivd(1) man:equivctl(1) ", ""))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    def exposure(path):
        security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(path)], capture_output=True, text=True)
        line = next(l for l in security.stdout.splitlines() if "Overall exposure level" in l)
        return float(line.split(":")[1].split()[0]), line
    level, line = exposure(unit)
    assert level <= 2.0, line
    # With the HTTP drop-in (offline analysis reads one file: the drop-in's settings appended, as
    # systemd merges them), IP sockets open and exposure stays <= 2.5.
    with_http = tmp_path / "equivd-http.service"
    with_http.write_text(unit.read_text() + "\n" + (ROOT / "systemd/equivd.service.d/network.conf").read_text())
    verify = subprocess.run(["systemd-analyze", "verify", str(with_http)], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    level, line = exposure(with_http)
    assert level <= 2.5, line
    print(f"exposure: {exposure(unit)[0]} alone, {level} with the HTTP drop-in")


def test_tail_filters_and_reconnects_across_restarts(tmp_path):
    sock = tmp_path / "s.sock"
    tail = subprocess.Popen([EQUIVCTL, "tail", "--json", "--label", "gear", "--fallback", "none", "--count", "4",
                             "--socket", str(sock)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # tail starts first and waits for the daemon

    def serve():
        # A 3 s file in real time gives 3 windows, then the daemon exits and removes the socket.
        daemon = subprocess.run([EQUIVD, "run", "--file", str(ROOT / "Samples/gear-nominal.wav"), "--socket", str(sock)],
                                capture_output=True, text=True, timeout=60)
        assert daemon.returncode == 0, daemon.stderr

    serve()
    serve()
    out, err = tail.communicate(timeout=30)
    events = [e for e in map(json.loads, out.splitlines()) if e["type"] == "prediction"]  # --json passes hello through
    assert tail.returncode == 0 and len(events) == 4
    assert all( e["label"] == "gear" and e["fallback"] == "none" for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs[0] == 0 and 0 in seqs[1:], f"the second daemon's windows start again at 0: {seqs}"
    assert "waiting for it" in err and "reconnecting" in err


def test_tail_prints_24_hour_time_checks_labels_and_counts_exactly(tmp_path):
    sock = tmp_path / "s.sock"
    daemon = looping_daemon(tmp_path, sock, speed=4)
    try:
        wait_until(lambda: sock.exists(), 30, "the socket")
        shown = subprocess.run([EQUIVCTL, "tail", "--count", "3", "--socket", str(sock)], capture_output=True,
                               text=True, timeout=30)
        lines = shown.stdout.splitlines()
        # The date once, then exactly three predictions stamped HH:MM:SS.s in 24-hour local time.
        assert shown.returncode == 0 and len(lines) == 4, shown.stdout
        assert re.fullmatch(r"── \d{4}-\d{2}-\d{2} ──", lines[0])
        now = time.strftime("%H:%M")
        for line in lines[1:]:
            assert re.match(r"\d{2}:\d{2}:\d{2}\.\d  ", line), line
            assert abs(int(line[:2]) * 60 + int(line[3:5]) - (int(now[:2]) * 60 + int(now[3:]))) % 1440 in (0, 1, 1439)
        none = subprocess.run([EQUIVCTL, "tail", "--count", "0", "--socket", str(sock)], capture_output=True, text=True,
                              timeout=10)
        assert none.returncode == 0 and none.stdout == ""
        unknown = subprocess.run([EQUIVCTL, "tail", "--label", "nosuchlabel", "--socket", str(sock)],
                                 capture_output=True, text=True, timeout=10)
        assert unknown.returncode == 64 and "--label nosuchlabel: the daemon's classes are normal, imbalance" in unknown.stderr
        bogus = subprocess.run([EQUIVCTL, "tail", "--fallback", "bogus", "--socket", str(sock)], capture_output=True,
                               text=True, timeout=10)
        assert bogus.returncode == 64 and "bogus" in bogus.stderr
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_socket_refuses_users_outside_its_group(tmp_path):
    folder = pathlib.Path(tempfile.mkdtemp(prefix="equivd-perm-"))
    folder.chmod(0o755)  # reachable by anyone; the socket itself is 0660 root:root
    sock = folder / "s.sock"
    daemon = looping_daemon(folder, sock)
    try:
        wait_until(sock.exists, 30, "the socket")
        as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        denied = subprocess.run(as_nobody + [EQUIVCTL, "status", "--socket", str(sock)], capture_output=True, text=True)
        assert denied.returncode == 77 and "permission denied" in denied.stderr
        allowed = subprocess.run([EQUIVCTL, "status", "--json", "--socket", str(sock)], capture_output=True, text=True)
        assert allowed.returncode == 0 and json.loads(allowed.stdout)["type"] == "status"
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(folder)


def test_reload_only_for_root_and_the_sockets_group(tmp_path):
    folder = pathlib.Path(tempfile.mkdtemp(prefix="equivd-peer-"))
    folder.chmod(0o755)
    sock = folder / "s.sock"
    daemon = looping_daemon(folder, sock, extra='mode = "0666"\n')
    try:
        wait_until(sock.exists, 30, "the socket")
        as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        watch = subprocess.run(as_nobody + [EQUIVCTL, "status", "--json", "--socket", str(sock)], capture_output=True, text=True)
        assert watch.returncode == 0, watch.stderr  # a world-readable socket lets anyone watch
        refused = subprocess.run(as_nobody + [EQUIVCTL, "reload", "--socket", str(sock)], capture_output=True, text=True)
        assert refused.returncode == 77 and "uid 65534" in refused.stderr, refused.stderr
        allowed = subprocess.run([EQUIVCTL, "reload", "--socket", str(sock)], capture_output=True, text=True)
        assert allowed.returncode == 0 and allowed.stdout.startswith("reloaded"), allowed.stdout + allowed.stderr
    finally:
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(folder)


# Syscalls that change the file system, as strace names them; bind creates the socket file.
MODIFYING = re.compile(r"^(creat|mkdir|mkdirat|mknod|mknodat|rename|renameat2?|unlink|unlinkat|rmdir|link|linkat|"
                       r"symlink|symlinkat|chmod|fchmodat|chown|lchown|fchownat|truncate|utimes|utimensat|"
                       r"setxattr|lsetxattr|removexattr|bind)$")


def test_writes_only_to_the_spool_and_runtime_directories(tmp_path):
    """Every file-system change the daemon makes while serving, spooling clips, reloading and
    stopping (traced with strace -f, every thread) is under the socket's folder or the spool."""
    runtime, spool = tmp_path / "run", tmp_path / "clips"
    runtime.mkdir()
    trace = tmp_path / "trace.txt"
    # -E: LeakSanitizer cannot run under ptrace (the ASan build of make sanitize); no effect otherwise.
    strace = ["strace", "-f", "-qq", "-s", "4096", "-e", "trace=%file,bind", "-e", "signal=none", "-o", str(trace),
              "-E", "ASAN_OPTIONS=detect_leaks=0"]
    tracer = looping_daemon(tmp_path, runtime / "s.sock", "normal-nominal.wav", speed=4, wrapper=strace,
                            extra=f'[spool]\ndirectory = "{spool}"\ncontext_seconds = 0\n')
    try:
        wait_until((runtime / "s.sock").exists, 60, "the socket")
        daemon = int(subprocess.run(["pgrep", "-P", str(tracer.pid)], capture_output=True, text=True).stdout.split()[0])
        wait_until(lambda: len(list(spool.glob("*.wav"))) >= 2, 60, "clips in the spool")
        os.kill(daemon, signal.SIGHUP)
        time.sleep(1)
        os.kill(daemon, signal.SIGTERM)
        assert tracer.wait(timeout=30) == 0
    finally:
        if tracer.poll() is None:
            tracer.kill()
    # ThreadSanitizer's runtime (make sanitize) keeps a scratch file of its own in /tmp.
    runtime_files = re.compile(r"/tmp/tsan\.rodata\.\d+$") if "TSAN_OPTIONS" in os.environ else None
    changes, outside = 0, []
    for line in trace.read_text().splitlines():
        call = re.match(r"^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)", line)
        if not call:
            continue
        name, args = call.group(1), call.group(2)
        if not (MODIFYING.match(name) or (name.startswith("open") and re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", args))):
            continue
        changes += 1
        for path in re.findall(r'"((?:[^"\\]|\\.)*)"', args):
            real = os.path.realpath(path)
            if runtime_files and runtime_files.match(real):
                continue
            if not any(real == str(d) or real.startswith(str(d) + "/") for d in (runtime, spool)):
                outside.append(line)
    print(f"{changes} file-system changes traced, {len(outside)} outside the spool and runtime folders")
    assert changes > 10 and not outside, "\n".join(outside[:20])


def test_socket_folder_removed_while_running_is_recreated(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    sock = folder / "s.sock"
    daemon = looping_daemon(tmp_path, sock)
    try:
        wait_until(sock.exists, 30, "the socket")
        connected, lines = tail_json(sock)
        wait_until(lambda: lines.of("prediction"), 30, "a prediction")
        shutil.rmtree(folder)
        wait_until(sock.exists, 5, "the socket to come back")
        before = len(lines.of("prediction"))
        wait_until(lambda: len(lines.of("prediction")) > before, 10, "the connected client's next event")
        fresh = subprocess.run([EQUIVCTL, "status", "--json", "--socket", str(sock)], capture_output=True, text=True)
        assert fresh.returncode == 0 and json.loads(fresh.stdout)["type"] == "status"
        connected.terminate()
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=5) == 0


def test_restart_after_kill_9_over_the_stale_socket(tmp_path):
    sock = tmp_path / "s.sock"
    cmd = [EQUIVD, "run", "--file", str(ROOT / "Samples/gear-nominal.wav"), "--socket", str(sock)]
    first = subprocess.Popen(cmd)
    wait_until(sock.exists, 30, "the socket")
    first.kill()
    first.wait()
    assert sock.exists(), "kill -9 leaves the socket file behind"
    second = subprocess.Popen(cmd)
    try:
        status = lambda: subprocess.run([EQUIVCTL, "status", "--json", "--socket", str(sock)], capture_output=True)  # noqa: E731
        wait_until(lambda: status().returncode == 0, 30, "the restarted daemon to answer over the old socket path")
    finally:
        second.terminate()
        second.wait()


def test_a_second_daemon_on_the_same_socket_refuses_and_leaves_the_first_serving(tmp_path):
    sock = tmp_path / "s.sock"
    first = looping_daemon(tmp_path, sock)
    try:
        wait_until(lambda: sock.exists() and status(sock), 30, "the first daemon")
        second = subprocess.run([EQUIVD, "run", "--file", str(ROOT / "Samples/gear-nominal.wav"), "--socket", str(sock)],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode != 0
        assert f"another equivd (pid {first.pid}) serves this socket" in second.stderr
        assert sock.exists() and first.poll() is None
        assert status(sock)["windows"] >= 0, "the first daemon still answers on its socket"
    finally:
        first.terminate()
        first.wait(timeout=10)


def test_hostile_traffic_never_affects_a_healthy_client(tmp_path):
    """Binary garbage, a 10 MB line and 1000 connections at once, while a healthy client reads:
    the long line is cut off at the bound (not read to its end), connections past
    `socket.max_clients` are refused with `too_many_clients`, and the healthy client misses nothing."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    sock = tmp_path / "s.sock"
    daemon = looping_daemon(tmp_path, sock, speed=SPEED * 2 / 3, extra="max_clients = 40\n")
    try:
        wait_until(sock.exists, 30, "the socket")
        healthy, lines = tail_json(sock)
        wait_until(lambda: lines.of("prediction"), 30, "the first prediction")

        rng = np.random.default_rng(3)
        garbage = socket.socket(socket.AF_UNIX)
        garbage.connect(str(sock))
        garbage.sendall(rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes())
        huge = socket.socket(socket.AF_UNIX)
        huge.connect(str(sock))
        huge.settimeout(30)
        line, sent = b"{" + b"x" * 10_000_000 + b"}\n", 0
        try:
            while sent < len(line):
                sent += huge.send(line[sent:sent + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < len(line), "the daemon read the whole 10 MB line instead of closing at the bound"
        reply = b""
        try:  # closed with the rest of the line unread: after the reply, the reset (not EOF)
            while chunk := huge.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
        assert b"request_too_long" in reply
        crowd, refusals = [], 0
        for _ in range(1000):
            c = socket.socket(socket.AF_UNIX)
            c.connect(str(sock))
            crowd.append(c)
        for c in crowd:
            c.settimeout(10)
            first = c.recv(4096)
            refusals += b"too_many_clients" in first
        before = len(lines.of("prediction"))
        wait_until(lambda: len(lines.of("prediction")) >= before + 8, 30, "predictions during the attack")
        crowded = subprocess.run([EQUIVCTL, "status", "--socket", str(sock)], capture_output=True, text=True)
        assert crowded.returncode == 69 and "refused the connection" in crowded.stderr and "socket.max_clients" in crowded.stderr
        for c in crowd + [garbage, huge]:
            c.close()
        assert refusals >= 1000 - 40
        wait_until(lambda: subprocess.run([EQUIVCTL, "status", "--socket", str(sock)], capture_output=True).returncode == 0,
                   10, "status once the crowd left")
        after = status(sock)
        assert len(after["clients"]) <= 40 and after["clients_refused"] >= refusals
        seqs = [p["seq"] for p in lines.of("prediction")]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "the healthy client lost or reordered events"
        assert not [e for e in lines.of("error") if e["code"] == "events_dropped"]
        assert daemon.poll() is None
        healthy.terminate()
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=10) == 0


def test_full_disk_under_the_clip_spool_loses_clips_not_predictions(tmp_path):
    """A spool on a full disk (a 512 KiB tmpfs: room for a few clips and their pages): clips fail
    with `clip_failed`, leave nothing half-written, and every prediction still goes out."""
    spool = tmp_path / "clips"
    spool.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(spool)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        sock = tmp_path / "s.sock"
        daemon = looping_daemon(tmp_path, sock, "normal-nominal.wav", speed=4,
                                extra=f'[spool]\ndirectory = "{spool}"\nquota_bytes = 10000000\ncontext_seconds = 0\n')
        try:
            wait_until(sock.exists, 30, "the socket")
            tail, lines = tail_json(sock)
            wait_until(lambda: len([e for e in lines.of("error") if e["code"] == "clip_failed"]) >= 2, 60, "clip_failed")
            before = len(lines.of("prediction"))
            wait_until(lambda: len(lines.of("prediction")) >= before + 4, 30, "predictions after the disk filled")
            abstained = [p for p in lines.of("prediction") if p["fallback"] == "abstain"]
            assert any(p["clip"] for p in abstained) and any(p["clip"] is None for p in abstained)
            assert not list(spool.glob("*.partial")), "a failed clip leaves nothing behind"
            assert daemon.poll() is None
            tail.terminate()
        finally:
            daemon.terminate()
            assert daemon.wait(timeout=10) == 0
    finally:
        subprocess.run(["umount", str(spool)])
