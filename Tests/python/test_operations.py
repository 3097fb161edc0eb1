"""What an operator of a plant PC relies on, end to end against `equivd run`: the log journald
reads, limits that hold when clients or descriptors run out, fatal conditions that exit non-zero,
reloads that keep their bookkeeping and their memory, and `--version`."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from test_service import EQUIVCTL, EQUIVD, ROOT, LogLines, status, tail_json, wait_until


def logged_daemon(folder, extra="", sample="gear-nominal.wav", speed=4, journal=False, wrapper=()):
    """`equivd run` playing `sample` in a loop at `speed`, its stderr in folder/stderr. With
    `journal`, JOURNAL_STREAM names that file, as systemd names the journal's stream."""
    sock = folder / "s.sock"
    config = folder / "equivd.toml"
    config.write_text(f'[source]\nkind = "file"\nfile = "{ROOT / "Samples" / sample}"\nloop = true\nspeed = {speed}\n'
                      f'[model]\nbundle = "{ROOT / "Models"}"\n[socket]\npath = "{sock}"\n{extra}')
    err = open(folder / "stderr", "w")
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    if journal:
        st = os.fstat(err.fileno())
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    daemon = subprocess.Popen([*wrapper, EQUIVD, "run", "--config", str(config)], stderr=err, env=env)
    err.close()
    return daemon, sock, config


def log_of(folder):
    return (folder / "stderr").read_text().splitlines()


def reload(sock):
    return subprocess.run([EQUIVCTL, "reload", "--socket", str(sock)], capture_output=True, text=True, timeout=60)


def test_the_log_has_a_line_for_each_event_with_journal_priorities(tmp_path):
    """Under systemd (JOURNAL_STREAM names stderr) each line starts with its syslog priority:
    start, ready, a reload applied and one refused with its reason, a client dropped for not
    reading, stopping and stopped."""
    daemon, sock, config = logged_daemon(
        tmp_path, "client_buffer_events = 1\nclient_drop_limit = 3\nsend_buffer_bytes = 4096\n", speed=12, journal=True)
    try:
        wait_until(sock.exists, 30, "the socket")
        sleeper = socket.socket(socket.AF_UNIX)  # connects and never reads
        sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sleeper.connect(str(sock))
        assert reload(sock).returncode == 0
        good = config.read_text()
        config.write_text(good.replace(str(ROOT / "Models"), str(tmp_path / "no-such-bundle")))
        refused = reload(sock)
        assert refused.returncode != 0
        config.write_text(good)
        wait_until(lambda: any("disconnected" in l for l in log_of(tmp_path)), 60, "the sleeping client to be dropped")
        sleeper.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
    lines = log_of(tmp_path)
    print("\n".join(lines))
    assert all(re.match(r"<[0-7]>", l) for l in lines), "every line carries a priority"
    def one(prefix, text):
        found = [l for l in lines if l.startswith(prefix) and text in l]
        assert found, f"no {prefix}…{text} line"
        return found[0]
    one("<6>", "starting equivd ")
    one("<6>", "ready: serving ")
    one("<5>", "reload applied: reloaded ")
    assert "no-such-bundle" in one("<3>", "reload refused, still serving the previous configuration and bundle: ")
    one("<4>", "disconnected: it lost 3 events in a row")
    one("<6>", "stopping: ")
    one("<6>", "stopped: ")


def test_the_log_is_plain_off_the_journal_and_its_level_is_configured(tmp_path):
    """Without JOURNAL_STREAM lines carry a time stamp and the level in words; `log.level`
    keeps lines below it out, and a reload changes it."""
    daemon, sock, config = logged_daemon(tmp_path, '[log]\nlevel = "warning"\n')
    try:
        wait_until(sock.exists, 30, "the socket")
        assert reload(sock).returncode == 0  # a notice: below warning
        config.write_text(config.read_text().replace('level = "warning"', 'level = "info"'))
        assert reload(sock).returncode == 0  # applied at the new level: shown
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
    lines = log_of(tmp_path)
    print("\n".join(lines))
    assert not [l for l in lines if "starting equivd" in l or "ready:" in l], "info lines at level warning"
    applied = [l for l in lines if "reload applied" in l]
    assert len(applied) == 1 and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ notice equivd: reload applied", applied[0])
    assert [l for l in lines if " info equivd: stopped: " in l]


def test_descriptor_exhaustion_never_stops_capture_or_inference(tmp_path):
    """With 100 descriptors (prlimit) and 200 connections, the daemon serves the clients that fit
    beside what it needs itself, refuses the rest with `too_many_clients`, says so in its log, and
    keeps deciding windows; it ends with 0 only when told to stop."""
    daemon, sock, _ = logged_daemon(tmp_path, wrapper=("prlimit", "--nofile=100:100"))
    crowd = []
    try:
        wait_until(sock.exists, 30, "the socket")
        tail, lines = tail_json(sock)
        wait_until(lambda: lines.of("prediction"), 30, "predictions")
        for _ in range(200):
            c = socket.socket(socket.AF_UNIX)
            c.connect(str(sock))
            crowd.append(c)
        refused = sum(b"too_many_clients" in c.recv(4096) for c in crowd)
        before = len(lines.of("prediction"))
        wait_until(lambda: len(lines.of("prediction")) >= before + 6, 30, "predictions while the descriptors are taken")
        assert refused >= 200 - 36 and daemon.poll() is None
        for c in crowd:
            c.close()
        crowd = []
        wait_until(lambda: subprocess.run([EQUIVCTL, "status", "--socket", str(sock)], capture_output=True).returncode == 0,
                   10, "status once the crowd left")
        assert status(sock)["clients_refused"] >= refused
        tail.terminate()
    finally:
        for c in crowd:
            c.close()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
    log = "\n".join(log_of(tmp_path))
    assert "socket.max_clients = 64, but the descriptor limit is 100: serving at most 36 clients" in log, log
    assert "refused: 36 clients connected (socket.max_clients)" in log


def test_a_failed_stream_and_a_bad_start_exit_non_zero(tmp_path):
    """The file a looping source plays is removed: the next loop cannot reopen it, and the daemon
    exits 74 (EX_IOERR) naming it, so `Restart=on-failure` acts. Refusals at start exit with their
    own sysexits code and no usage banner."""
    audio = tmp_path / "line.wav"
    shutil.copy(ROOT / "Samples/gear-nominal.wav", audio)
    sock = tmp_path / "s.sock"
    config = tmp_path / "equivd.toml"
    config.write_text(f'[source]\nkind = "file"\nfile = "{audio}"\nloop = true\nspeed = 6\n'
                      f'[model]\nbundle = "{ROOT / "Models"}"\n[socket]\npath = "{sock}"\n')
    daemon = subprocess.Popen([EQUIVD, "run", "--config", str(config)], stderr=subprocess.PIPE, text=True)
    log = LogLines(daemon.stderr)
    wait_until(sock.exists, 30, "the socket")
    audio.unlink()
    assert daemon.wait(timeout=30) == 74
    assert [l for l in log.lines if " critical equivd: stopped: the stream from " in l and "line.wav" in l], log.lines
    assert not sock.exists()

    def start(*args):
        return subprocess.run([EQUIVD, "run", *args], capture_output=True, text=True, timeout=60)
    missing = start("--file", str(tmp_path / "gone.wav"), "--socket", str(sock))
    assert missing.returncode == 66 and "gone.wav" in missing.stderr and "Usage" not in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[log]\nlevel = "loud"\n')
    refused = start("--config", str(bad))
    assert refused.returncode == 78 and "log.level: must be one of trace, debug, info, notice, warning, error, critical" in refused.stderr


def test_reloads_keep_counters_and_notice_grow_the_history_and_free_memory(tmp_path):
    """Twenty-two reloads: the clip count carries on, the restart notice stays until a restart, a
    longer `spool.context_seconds` gives longer clips (the history grows), and the resident memory
    stops growing: its floor over the last ten reloads is within 3 MB of the ten before (old
    bundles freed)."""
    clips = tmp_path / "clips"
    spool = f'[spool]\ndirectory = "{clips}"\ncontext_seconds = 0.5\n'
    daemon, sock, config = logged_daemon(tmp_path, spool, sample="normal-nominal.wav", speed=4)
    try:
        wait_until(sock.exists, 30, "the socket")
        wait_until(lambda: status(sock)["clips"] >= 2, 60, "clips of abstained windows")
        counted = status(sock)["clips"]
        base = config.read_text()
        config.write_text(base.replace("speed = 4", "speed = 5"))  # [source]: only at a restart
        first = reload(sock)
        assert first.returncode == 0 and "changes to [source] take effect after a restart" in first.stdout, first.stdout
        assert status(sock)["clips"] >= counted, "the clip count carries on across reloads"
        # 9 s of context: more than the history kept at start (the 0.5 s context, a window, the queue).
        config.write_text(base.replace("speed = 4", "speed = 5").replace("context_seconds = 0.5", "context_seconds = 9.0"))
        second = reload(sock)
        assert "changes to [source] take effect after a restart" in second.stdout, "the notice stays until a restart"
        time.sleep(4)  # 16 s of stream at speed 4: the grown history holds the 9 s context
        made = set(clips.glob("*.wav"))
        wait_until(lambda: set(clips.glob("*.wav")) - made, 60, "a clip made once the grown history has filled")
        newest = sorted(set(clips.glob("*.wav")) - made)[0]
        import wave
        with wave.open(str(newest)) as w:
            length = w.getnframes() / w.getframerate()
        assert length >= 10.0, f"{newest.name}: {length:.2f} s, the 9 s context and the window expected"

        def rss():
            return int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{daemon.pid}/status").read()).group(1))
        sizes = []
        for _ in range(20):
            assert reload(sock).returncode == 0
            time.sleep(0.2)
            sizes.append(rss())
        # The floor: glibc's arenas make single readings jump by a few MB, but a leaked bundle
        # (its weights and plan, several MB) per reload would lift the floor by tens of MB.
        early, late = min(sizes[:10]), min(sizes[10:])
        print("RSS after each of 20 reloads, MB:", " ".join(f"{k / 1024:.1f}" for k in sizes))
        assert late - early <= 3072, f"RSS still grows: at least {early / 1024:.1f} MB over reloads 3-12, {late / 1024:.1f} over 13-22"
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0


def test_version_names_the_commit_and_the_bundle(tmp_path):
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    for tool in (EQUIVD, EQUIVCTL):
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        first = out.stdout.splitlines()[0]
        assert re.fullmatch(rf"{os.path.basename(tool)} \d+\.\d+\.\d+ \(commit [0-9a-f]{{12}}, (x86_64|aarch64|other)\)", first), first
        if head:
            assert f"commit {head}" in first
    bundle = subprocess.run([EQUIVD, "--version"], capture_output=True, text=True, cwd=ROOT).stdout.splitlines()[1]
    assert re.fullmatch(r"bundle Models: canonicalizer [0-9a-f]{12}, classifier [0-9a-f]{12}, fixed_pose [0-9a-f]{12}, "
                        r"separator [0-9a-f]{12}", bundle), bundle
