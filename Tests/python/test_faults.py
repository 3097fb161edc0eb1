"""Faults of a line-side service, each end to end against `equivd run`: a capture overrun,
a stalled source and a stalled inference (the watchdog stops feeding systemd), the capture device
lost and returned.

The overrun and stall tests capture from `clocked`, an alsa-lib external PCM plugin built here from
Tests/alsa/pcm_clocked.c: its pointer runs on the clock like a sound card's, so a reader that falls
a buffer behind gets -EPIPE from alsa-lib, and while a file exists it delivers nothing.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
import threading
import time
import hashlib

import numpy as np
import pytest

from test_service import EQUIVD, PERIOD, RATE, ROOT, LogLines, NotifySocket, read_wav, status, tail_json, wait_until


def pings(notify, after):
    return sum("WATCHDOG=1" in m for m in notify.messages[after:])


def watched_daemon(folder, source, bundle, extra=""):
    """`equivd run` with `source` (the [source] table's lines) and `bundle`, on folder/s.sock,
    with a notify socket and WatchdogSec=1 of the test's own; `extra` adds sections. Its log is
    collected in `daemon.log` (LogLines)."""
    sock = folder / "s.sock"
    (folder / "equivd.toml").write_text(f'[source]\n{source}\n[model]\nbundle = "{bundle}"\n[socket]\npath = "{sock}"\n{extra}')
    notify = NotifySocket(folder / "notify")
    daemon = subprocess.Popen([EQUIVD, "run", "--config", str(folder / "equivd.toml")], stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="1000000"))
    daemon.log = LogLines(daemon.stderr)
    return daemon, notify, sock


@pytest.fixture(scope="module")
def clocked_plugin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("alsa")
    plugin = folder / "libasound_module_pcm_clocked.so"
    subprocess.run(["cc", "-O2", "-DPIC", "-shared", "-fPIC", "-o", str(plugin),
                    str(ROOT / "Tests/alsa/pcm_clocked.c"), "-lasound"], check=True)
    return plugin


def clocked_device_daemon(folder, plugin, extra=""):
    """`equivd run` capturing from the clocked device `equivtest`, which plays folder/audio.raw in
    a loop and stands still while folder/stall exists (watched_daemon's notify socket and
    WatchdogSec=1)."""
    (folder / "asound.conf").write_text(
        f'pcm_type.clocked {{ lib "{plugin}" }}\n'
        f'pcm.equivtest {{ type clocked; file "{folder / "audio.raw"}"; stall_file "{folder / "stall"}" }}\n')
    return watched_daemon(
        folder, f'device = "equivtest"\nalsa_config = "{folder / "asound.conf"}"\nformat = "S16_LE"', ROOT / "Models", extra)


@pytest.fixture
def clocked_daemon(tmp_path, clocked_plugin):
    """`equivd run` capturing gear-nominal.wav in a loop, in real time, from the clocked device,
    with a notify socket and WatchdogSec=1 of the test's own."""
    (tmp_path / "audio.raw").write_bytes(read_wav(ROOT / "Samples/gear-nominal.wav").tobytes())
    stall = tmp_path / "stall"
    daemon, notify, sock = clocked_device_daemon(tmp_path, clocked_plugin)
    tail = None
    try:
        assert notify.wait_for("READY=1", 30)
        tail, lines = tail_json(sock)
        wait_until(lambda: len(lines.of("prediction")) >= 3, 30, "predictions from the clocked device")
        yield dict(daemon=daemon, sock=sock, stall=stall, notify=notify, lines=lines)
        assert daemon.poll() is None
    finally:
        if tail:
            tail.terminate()
        daemon.terminate()
        daemon.wait(timeout=10)
        notify.sock.close()


def test_capture_overrun_is_recovered(clocked_daemon):
    """The whole process stalls (SIGSTOP) for 1 s, more than the 0.4 s device buffer: alsa-lib
    reports the overrun (-EPIPE), capture recovers in place and predictions resume. The second of
    audio the device lost is a gap: counted in the stream clock and in status, carried by the
    next prediction, and no window spans it."""
    d = clocked_daemon
    labels = [p["label"] for p in d["lines"].of("prediction")]
    assert status(d["sock"])["xruns"] == 0
    d["daemon"].send_signal(signal.SIGSTOP)
    time.sleep(1.0)
    d["daemon"].send_signal(signal.SIGCONT)
    wait_until(lambda: status(d["sock"])["xruns"] >= 1, 5, "the overrun to be counted")
    s = status(d["sock"])
    print("after the overrun:", s["xruns"], "xruns, last error:", s["last_error"])
    assert "snd_pcm_readi" in s["last_error"] and "Broken pipe" in s["last_error"] and s["reconnects"] == 0
    before = len(d["lines"].of("prediction"))
    wait_until(lambda: len(d["lines"].of("prediction")) >= before + 4, 10, "predictions after the overrun")
    after = [p["label"] for p in d["lines"].of("prediction")[before:]]
    assert max(set(after), key=after.count) == max(set(labels), key=labels.count), "same machine, same label"
    predictions = d["lines"].of("prediction")
    seqs = [p["seq"] for p in predictions]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    carried = [i for i, p in enumerate(predictions) if p["gap_before_ms"] > 0]
    assert len(carried) == 1 and carried[0] > 0, f"one prediction carries the gap: {carried}"
    gap, pre, post = predictions[carried[0]]["gap_before_ms"], predictions[carried[0] - 1], predictions[carried[0]]
    print(f"gap {gap:.0f} ms; stream {pre['stream_end']:.3f} -> {post['stream_start']:.3f} s")
    assert 700 <= gap <= 1700, "about the second the process was stopped"
    assert post["stream_start"] - pre["stream_end"] >= gap / 1000, "no window spans the gap"
    for a, b in zip(predictions, predictions[1:]):
        if b is not post:
            assert abs(b["stream_start"] - a["stream_start"] - 0.5) < 1e-9, "unbroken audio: a window every 0.5 s"
    s = status(d["sock"])
    assert s["gaps"] == 1 and abs(s["dropped_samples"] / RATE * 1000 - gap) < 1
    overran = d["daemon"].log.having("capture from equivtest overran")
    assert len(overran) == s["xruns"] and " warning " in overran[0], d["daemon"].log.lines


def test_stalled_source_stops_the_watchdog_until_it_resumes(clocked_daemon):
    """The device stops delivering (its clock stands still): no audio, so no WATCHDOG=1 — systemd
    would restart the service after WatchdogSec — and both resume when the device does."""
    d = clocked_daemon
    assert d["notify"].wait_for("WATCHDOG=1", 2), "fed while audio flows"
    d["stall"].touch()
    time.sleep(0.6)  # a look that saw progress before the stall may still ping
    mark, audio = len(d["notify"].messages), status(d["sock"])["audio_seconds"]
    time.sleep(2.5)
    assert pings(d["notify"], mark) == 0, "the watchdog was fed while no audio came"
    assert status(d["sock"])["audio_seconds"] == audio
    d["stall"].unlink()
    resumed = time.monotonic()
    assert d["notify"].wait_for("WATCHDOG=1", 3, after=mark), "the watchdog is fed again"
    wait_until(lambda: status(d["sock"])["audio_seconds"] > audio + 0.5, 5, "audio after the stall")
    print(f"source resumed: watchdog fed and audio flowing after {time.monotonic() - resumed:.2f} s")
    assert d["daemon"].poll() is None


def slow_bundle(folder, layers=200):
    """A copy of the default bundle whose classifier is `layers` 512-channel 1×1 convolutions on
    the full 168×100 window (4.4 G multiply-adds each, about 15 s a call here): an inference that
    stalls, exported as ONNX with the real interface (x: N×1×168×100 → logits: N×6) and its hash
    in bundle.json. 1×1 convolutions run on OpenBLAS, so their speed does not depend on equivd's
    own kernels."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    bundle = folder / "bundle"
    shutil.copytree(ROOT / "Models", bundle)
    rng, c = np.random.default_rng(0), 512
    weights = [numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
               for name, shape, scale in [("w_in", (c, 1, 1, 1), 0.3), ("w", (c, c, 1, 1), 0.04), ("w_out", (6, c), 0.1)]]
    nodes = [helper.make_node("Conv", ["x", "w_in"], ["h0"])]
    nodes += [helper.make_node("Conv", [f"h{i}", "w"], [f"h{i + 1}"]) for i in range(layers)]
    nodes += [helper.make_node("GlobalAveragePool", [f"h{layers}"], ["g"]),
              helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("Gemm", ["f", "w_out"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "stalling", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 168, 100])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 6])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, bundle / "classifier.onnx")
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["models"]["classifier"]["sha256"] = hashlib.sha256((bundle / "classifier.onnx").read_bytes()).hexdigest()
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    return bundle


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_healthz_turns_503_while_the_source_stalls(tmp_path, clocked_plugin):
    """/healthz answers by the watchdog's rule: 200 while audio is analysed and decided, 503 naming
    the source once the device has delivered nothing for http.stall_seconds, 200 again after."""
    (tmp_path / "audio.raw").write_bytes(read_wav(ROOT / "Samples/gear-nominal.wav").tobytes())
    port = free_port()
    daemon, notify, sock = clocked_device_daemon(
        tmp_path, clocked_plugin, f'[http]\nlisten = "127.0.0.1:{port}"\nstall_seconds = 1.5\n')
    try:
        assert notify.wait_for("READY=1", 30)
        wait_until(lambda: status(sock)["windows"] >= 2, 30, "windows from the clocked device")
        assert http_get(port, "/healthz") == (200, "ok\n")
        (tmp_path / "stall").touch()
        wait_until(lambda: http_get(port, "/healthz")[0] == 503, 6, "503 from /healthz while the device stalls")
        code, reason = http_get(port, "/healthz")
        assert code == 503 and "no audio analysed" in reason and "equivtest" in reason, reason
        (tmp_path / "stall").unlink()
        wait_until(lambda: http_get(port, "/healthz")[0] == 200, 6, "200 from /healthz after the stall")
        assert daemon.poll() is None
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        notify.sock.close()


def test_inference_stall_stops_the_watchdog(tmp_path):
    """Audio keeps coming but inference is stuck in a call: windows queue up, the watchdog stops
    being fed, status still answers, and SIGTERM still stops the daemon promptly."""
    daemon, notify, sock = watched_daemon(
        tmp_path, f'kind = "file"\nfile = "{ROOT / "Samples/gear-nominal.wav"}"\nloop = true', slow_bundle(tmp_path))
    try:
        assert notify.wait_for("READY=1", 60)
        wait_until(lambda: status(sock)["queued_windows"] >= 1, 10, "windows waiting for inference")
        time.sleep(0.6)
        mark, audio = len(notify.messages), status(sock)["audio_seconds"]
        time.sleep(3)
        s = status(sock)
        print(f"inference stalled: {s['queued_windows']} windows queued, {s['windows']} decided, "
              f"{pings(notify, mark)} watchdog pings in 3 s")
        assert s["audio_seconds"] >= audio + 2, "capture and DSP keep going"
        assert s["windows"] == 0 and s["queued_windows"] >= 3
        assert pings(notify, mark) == 0, "the watchdog was fed while inference was stuck"
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
        assert time.monotonic() - started < 3.0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        notify.sock.close()


def test_a_device_absent_at_start_is_waited_for(tmp_path, clocked_plugin):
    """The capture device cannot be opened at start (the clocked plugin's recording is not there
    yet, as a USB interface that appears late): the daemon still comes up — READY, the socket,
    `status` naming the problem, STATUS= saying it waits — and captures once the device appears."""
    daemon, notify, sock = clocked_device_daemon(tmp_path, clocked_plugin)  # audio.raw not there yet
    try:
        assert notify.wait_for("READY=1", 30), "READY although the device is absent"
        waiting = status(sock)
        assert waiting["audio_seconds"] == 0 and "equivtest" in waiting["last_error"], waiting["last_error"]
        assert notify.wait_for("STATUS=waiting for audio from equivtest", 5)
        time.sleep(1)
        assert daemon.poll() is None
        (tmp_path / "audio.raw").write_bytes(read_wav(ROOT / "Samples/gear-nominal.wav").tobytes())  # it appears
        wait_until(lambda: status(sock)["audio_seconds"] > 0.5, 10, "capture once the device appeared")
        assert status(sock)["reconnects"] >= 1
        log = daemon.log
        assert len(log.having("capture from equivtest lost: ")) == 1, "one line per outage, however many reopens"
        assert len(log.having("capture from equivtest is back")) == 1 and log.having("ready: waiting for audio from equivtest")
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=10) == 0
        notify.sock.close()


def test_capture_device_lost_and_returned(tmp_path):
    """A device that fails (alsa-lib's file plugin cannot write its copy: a full disk) and comes
    back (space freed): errors, reopen attempts, then capture and events resume within 2 s."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    (tmp_path / "asound.conf").write_text(
        f'pcm.equivtest {{ type file; slave.pcm {{ type null }}; file "{disk / "copy.raw"}"; infile "{fifo}"; format "raw" }}\n')
    sock = tmp_path / "s.sock"
    (tmp_path / "equivd.toml").write_text(
        f'[source]\ndevice = "equivtest"\nalsa_config = "{tmp_path / "asound.conf"}"\nformat = "S16_LE"\n'
        f'[model]\nbundle = "{ROOT / "Models"}"\n[socket]\npath = "{sock}"\n')
    stop = threading.Event()
    samples = read_wav(ROOT / "Samples/gear-nominal.wav")

    def pace():  # the "microphone": reopens the FIFO whenever the device closed it
        n = 0
        while not stop.is_set():
            try:
                with open(fifo, "wb", buffering=0) as f:
                    while not stop.is_set():
                        i = (n * PERIOD) % (len(samples) - PERIOD)
                        f.write(samples[i:i + PERIOD].astype("<i2").tobytes())
                        n += 1
                        time.sleep(PERIOD / RATE / 2)
            except BrokenPipeError:
                continue

    threading.Thread(target=pace, daemon=True).start()
    daemon = subprocess.Popen([EQUIVD, "run", "--config", str(tmp_path / "equivd.toml")])
    try:
        wait_until(sock.exists, 30, "the socket")
        tail, lines = tail_json(sock)
        wait_until(lambda: lines.of("prediction"), 30, "predictions")

        # Remove the device: fill its disk, so its next write fails and every reopen fails soon.
        subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=4k"], capture_output=True)
        wait_until(lambda: status(sock)["reconnects"] >= 2, 30, "capture errors and reopen attempts")
        lost = status(sock)
        print("device lost:", lost["reconnects"], "reopens, last error:", lost["last_error"])
        assert lost["last_error"]
        # Return it; capture must resume within 2 s and predictions flow again.
        before = len(lines.of("prediction"))
        (disk / "filler").unlink()
        returned = time.monotonic()
        stream_before = status(sock)["audio_seconds"]
        wait_until(lambda: status(sock)["audio_seconds"] > stream_before + 0.5, 10, "audio after the device returned")
        recovered = time.monotonic() - returned
        print(f"device returned: audio flowing again after {recovered:.2f} s")
        assert recovered < 2.0, "reconnect within 2 s of the device's return"
        wait_until(lambda: len(lines.of("prediction")) > before + 2, 10, "predictions after the device returned")
        assert daemon.poll() is None
        tail.terminate()
    finally:
        stop.set()
        daemon.terminate()
        daemon.wait(timeout=10)
        subprocess.run(["umount", "-l", str(disk)])
