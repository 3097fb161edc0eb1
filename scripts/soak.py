"""Soak test of `equivd run`: replayed audio faster than real time with 50 socket
clients — healthy readers, clients that never read, and clients that connect and disconnect over
and over — while RSS is recorded.

Passes when nothing crashes, every healthy reader received the same predictions in the same
order with no `events_dropped` notice, every stalled client shows drops in `status`, and RSS
after warm-up drifts by at most --max-drift-mb. Prints one line of figures and writes them as
JSON (--out).

    .venv/bin/python scripts/soak.py --equivd .build/release/equivd --audio-hours 24 --speed 100
    .venv/bin/python scripts/soak.py --audio-hours 1 --speed 12      # the CI version (debug build)
"""

import argparse
import json
import os
import pathlib
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def sample_loop(path):
    """The bundled 16 kHz mono samples, one after another, as one WAV."""
    parts = []
    for wav in sorted((ROOT / "Samples").glob("*.wav")):
        with wave.open(str(wav)) as w:
            if w.getframerate() == 16000 and w.getnchannels() == 1:
                parts.append(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.concatenate(parts).tobytes())


class Readers(threading.Thread):
    """Healthy clients on one selector: each records the seq of every prediction it reads."""

    def __init__(self, path, count):
        super().__init__(daemon=True)
        self.selector = selectors.DefaultSelector()
        self.seqs = [[] for _ in range(count)]
        self.notices = 0
        self.buffers = [b""] * count
        for i in range(count):
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.setblocking(False)
            self.selector.register(s, selectors.EVENT_READ, i)
        self.open = count
        self.start()

    def run(self):
        while self.open:
            for key, _ in self.selector.select(timeout=1):
                i = key.data
                try:
                    data = key.fileobj.recv(1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    self.selector.unregister(key.fileobj)
                    self.open -= 1
                    continue
                *lines, self.buffers[i] = (self.buffers[i] + data).split(b"\n")
                for line in lines:
                    event = json.loads(line)
                    if event["type"] == "prediction":
                        self.seqs[i].append(event["seq"])
                    elif event["type"] == "error" and event["code"] == "events_dropped":
                        self.notices += 1


def churn(path, stop, counter):
    """Connect, read the hello and a little more, disconnect; again and again."""
    while not stop.is_set():
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(path)
                s.recv(4096)
                counter[0] += 1
        except OSError:
            pass
        time.sleep(0.05)


def rss_mb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def status(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b'{"cmd":"status"}\n')
        buffer = b""
        while True:
            buffer += s.recv(1 << 16)
            for line in buffer.split(b"\n")[:-1]:
                event = json.loads(line)
                if event["type"] == "status":
                    return event


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--equivd", default=str(ROOT / ".build/release/equivd"))
    ap.add_argument("--audio-hours", type=float, default=24)
    ap.add_argument("--speed", type=float, default=100, help="times faster than real time")
    ap.add_argument("--healthy", type=int, default=35)
    ap.add_argument("--stalled", type=int, default=10)
    ap.add_argument("--churning", type=int, default=5)
    ap.add_argument("--max-drift-mb", type=float, default=2.0)
    ap.add_argument("--out", help="write the figures here as JSON")
    args = ap.parse_args()

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="equivd-soak-"))
    sample_loop(tmp / "loop.wav")
    sock = str(tmp / "equivd.sock")
    (tmp / "soak.toml").write_text(f"""
[source]
kind = "file"
file = "{tmp / 'loop.wav'}"
loop = true
speed = {args.speed}
[model]
bundle = "{ROOT / 'Models'}"
[pipeline]
window_queue = 64
[socket]
path = "{sock}"
status_interval = 5.0
client_buffer_events = 256
""")
    daemon = subprocess.Popen([args.equivd, "run", "--config", str(tmp / "soak.toml")])
    while not os.path.exists(sock):
        if daemon.poll() is not None:
            sys.exit("equivd exited before listening")
        time.sleep(0.05)

    readers = Readers(sock, args.healthy)
    stalled = []
    for _ in range(args.stalled):
        s = socket.socket(socket.AF_UNIX)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(sock)
        stalled.append(s)
    stop, reconnects = threading.Event(), [0]
    churners = [threading.Thread(target=churn, args=(sock, stop, reconnects), daemon=True) for _ in range(args.churning)]
    for t in churners:
        t.start()

    target = args.audio_hours * 3600
    started, rss, audio = time.monotonic(), [], 0.0
    while audio < target:
        time.sleep(2)
        if daemon.poll() is not None:
            sys.exit(f"equivd died with status {daemon.returncode} after {audio:.0f} s of audio")
        rss.append((time.monotonic() - started, rss_mb(daemon.pid)))
        audio = status(sock)["audio_seconds"]
    final = status(sock)
    stop.set()
    daemon.send_signal(signal.SIGTERM)
    code = daemon.wait(timeout=10)
    readers.join(timeout=10)

    wall = time.monotonic() - started
    warm = [r for t, r in rss if t >= 0.1 * wall]
    drift = max(warm) - warm[0] if warm else float("nan")
    reference = max(readers.seqs, key=len)
    # A reader that connected later starts later; from there on it must match the longest one.
    identical = all(s == reference[len(reference) - len(s):] for s in readers.seqs)
    stalled_drops = sorted(c["dropped"] for c in final["clients"] if c["dropped"] > 0)
    figures = {
        "audio_hours": audio / 3600, "wall_minutes": wall / 60, "speed": args.speed, "exit_status": code,
        "windows": final["windows"], "dropped_windows": final["dropped_windows"],
        "events_per_healthy_client": [len(s) for s in readers.seqs][:3] + ["…"],
        "healthy_clients": args.healthy, "healthy_identical": identical, "healthy_drop_notices": readers.notices,
        "stalled_clients_with_drops": len(stalled_drops), "stalled_drops_min_max": [min(stalled_drops, default=0), max(stalled_drops, default=0)],
        "clients_disconnected": final["clients_disconnected"], "churn_connections": reconnects[0],
        "rss_mb_first_warm_last": [warm[0], max(warm), rss[-1][1]] if warm else [], "rss_drift_mb": drift,
    }
    print(json.dumps(figures))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps({**figures, "rss_series": rss}, indent=1))
    ok = (code == 0 and identical and readers.notices == 0 and drift <= args.max_drift_mb
          and len(stalled_drops) + final["clients_disconnected"] >= args.stalled)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
