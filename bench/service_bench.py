"""Live figures of `equivd run`: CPU (% of one core), RSS, and latency from the last
sample of a window to its event at a socket client, on the ALSA `file`-plugin device fed in real
time.

A pacer writes one ALSA period (100 ms) at a time into the FIFO the plugin reads, at the pace of
real time, and records when it wrote each period; a client on the socket records when each
prediction arrives. Latency = arrival − the moment the period holding the window's last sample
was handed to the device. Run: `make bench-service` (or `.venv/bin/python bench/service_bench.py
--equivd .build/release/equivd --seconds 120`).
"""

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import wave

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
RATE, PERIOD, HOP, FFT, WINDOW_FRAMES, STEP = 16000, 1600, 160, 8192, 100, 50


def sample_audio():
    parts = []
    for path in sorted((ROOT / "Samples").glob("*.wav")):
        with wave.open(str(path)) as w:
            if w.getframerate() == RATE and w.getnchannels() == 1:
                parts.append(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))
    return np.concatenate(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--equivd", default=str(ROOT / ".build/release/equivd"))
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--warmup", type=float, default=10)
    args = ap.parse_args()

    audio = sample_audio()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="equivd-bench-"))
    fifo = tmp / "capture.fifo"
    os.mkfifo(fifo)
    (tmp / "asound.conf").write_text(
        f'pcm.bench {{ type file; slave.pcm {{ type null }}; file "/dev/null"; infile "{fifo}"; format "raw" }}\n')
    sock = tmp / "equivd.sock"
    (tmp / "equivd.toml").write_text(f"""
[source]
device = "bench"
alsa_config = "{tmp / 'asound.conf'}"
format = "S16_LE"
[model]
bundle = "{ROOT / 'Models'}"
[socket]
path = "{sock}"
""")
    written = {}  # period index → monotonic time it was handed to the device
    stop = threading.Event()

    def pace():
        with open(fifo, "wb", buffering=0) as f:
            start, n = time.monotonic(), 0
            while not stop.is_set():
                i = (n * PERIOD) % (len(audio) - PERIOD)
                f.write(audio[i:i + PERIOD].tobytes())
                written[n] = time.monotonic()
                n += 1
                time.sleep(max(0.0, start + n * PERIOD / RATE - time.monotonic()))

    daemon = subprocess.Popen([args.equivd, "run", "--config", str(tmp / "equivd.toml")])
    threading.Thread(target=pace, daemon=True).start()
    while not sock.exists():
        time.sleep(0.05)
    client = socket.socket(socket.AF_UNIX)
    client.connect(str(sock))
    arrivals = []

    def read():
        buffer = b""
        while True:
            data = client.recv(65536)
            if not data:
                return
            now = time.monotonic()
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                event = json.loads(line)
                if event["type"] == "prediction":
                    arrivals.append((event["seq"], now, event["latency_ms"]))

    threading.Thread(target=read, daemon=True).start()

    def cpu_seconds():
        fields = pathlib.Path(f"/proc/{daemon.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb():
        for line in pathlib.Path(f"/proc/{daemon.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    time.sleep(args.warmup)
    cpu0, wall0, rss = cpu_seconds(), time.monotonic(), []
    while time.monotonic() - wall0 < args.seconds:
        time.sleep(1)
        rss.append(rss_mb())
    cpu = (cpu_seconds() - cpu0) / (time.monotonic() - wall0) * 100
    daemon.terminate()
    daemon.wait(timeout=5)
    stop.set()

    latencies, internal = [], []
    for seq, arrived, latency_ms in arrivals:
        last_sample = (seq * STEP + WINDOW_FRAMES - 1) * HOP + FFT - 1
        period = last_sample // PERIOD
        if period in written and arrived - wall0 > -args.warmup + 5:
            latencies.append((arrived - written[period]) * 1000)
            internal.append(latency_ms)
    q = lambda xs, p: float(np.percentile(xs, p))  # noqa: E731
    print(f"equivd run, ALSA file-plugin device at real time, {args.seconds:.0f} s after {args.warmup:.0f} s warm-up")
    print(f"  CPU: {cpu:.2f} % of one core")
    print(f"  RSS: median {statistics.median(rss):.1f} MB, max {max(rss):.1f} MB (first {rss[0]:.1f}, last {rss[-1]:.1f})")
    print(f"  latency, last sample handed to the device → event at the client ({len(latencies)} windows): "
          f"p50 {q(latencies, 50):.2f} ms, p99 {q(latencies, 99):.2f} ms, max {max(latencies):.2f} ms")
    print(f"  of which inside the daemon (latency_ms: block read → event encoded): "
          f"p50 {q(internal, 50):.2f} ms, p99 {q(internal, 99):.2f} ms")


if __name__ == "__main__":
    main()
