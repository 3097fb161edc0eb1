"""One daemon publishing to a real mosquitto at 100x real time, two QoS 1 subscribers: throughput,
the daemon's CPU and memory, steady and then through a 30-second broker outage (the on-disk queue
filling, then draining when the broker returns), and whether every window reached both
subscribers after de-duplication by (run, seq). Run: `make bench-fleet` (or
`.venv/bin/python bench/fleet_bench.py --equivd .build/release/equivd`).
"""

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests/python"))
from test_service import read_wav, write_wav  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def status(sock):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(b'{"cmd":"status"}\n')
        f = s.makefile()
        for line in f:
            event = json.loads(line)
            if event["type"] == "status":
                return event


class Subscriber(threading.Thread):
    def __init__(self, port, name):
        super().__init__(daemon=True)
        self.proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "bench/line/prediction",
                                      "-q", "1", "-c", "-i", name], stdout=subprocess.PIPE, text=True)
        self.keys, self.deliveries = set(), 0
        self.start()

    def run(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            self.keys.add((event["run"], event["seq"]))
            self.deliveries += 1


class Broker:
    def __init__(self, folder, port):
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"listener {port} 127.0.0.1\nuser root\nallow_anonymous true\npersistence true\n"
                               f"persistence_location {folder}/\nmax_queued_messages 100000\n")
        self.port = port
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def measure(pid, sock, seconds, label):
    """CPU (% of one core), peak RSS, windows/s and MQTT figures over `seconds`."""
    s0, c0, t0 = status(sock), cpu_seconds(pid), time.monotonic()
    peak_rss, peak_queue = 0.0, 0
    while time.monotonic() - t0 < seconds:
        time.sleep(0.5)
        peak_rss = max(peak_rss, rss_mib(pid))
        peak_queue = max(peak_queue, status(sock)["mqtt"]["queued_bytes"])
    s1, c1, t1 = status(sock), cpu_seconds(pid), time.monotonic()
    wall = t1 - t0
    row = dict(phase=label, seconds=round(wall, 1), windows_per_s=(s1["windows"] - s0["windows"]) / wall,
               realtime_factor=(s1["audio_seconds"] - s0["audio_seconds"]) / wall,
               dropped_windows=s1["dropped_windows"] - s0["dropped_windows"],
               mqtt_sent_per_s=(s1["mqtt"]["sent"] - s0["mqtt"]["sent"]) / wall, cpu_percent=100 * (c1 - c0) / wall,
               peak_rss_mib=peak_rss, peak_queue_kib=peak_queue / 1024)
    print(json.dumps(row), flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--equivd", default=str(ROOT / ".build/release/equivd"))
    ap.add_argument("--seconds", type=float, default=60, help="steady phase")
    ap.add_argument("--outage", type=float, default=30)
    ap.add_argument("--speed", type=float, default=100)
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="equivd-fleet-bench-"))
    wav = tmp / "samples.wav"
    write_wav(wav, np.concatenate([read_wav(p) for p in sorted((ROOT / "Samples").glob("*.wav")) if "44k1" not in p.name]))
    port = free_port()
    broker = Broker(tmp, port)
    subs = [Subscriber(port, f"historian{i}") for i in range(2)]
    time.sleep(0.5)
    sock = tmp / "s.sock"
    (tmp / "equivd.toml").write_text(
        f'[source]\nkind = "file"\nfile = "{wav}"\nloop = true\nspeed = {args.speed}\n[model]\nbundle = "{ROOT / "Models"}"\n'
        f'[socket]\npath = "{sock}"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\ntopic_prefix = "bench/line"\n'
        f'status_interval = 1\nqueue_directory = "{tmp / "queue"}"\nqueue_bytes = 100000000\n')
    daemon = subprocess.Popen([args.equivd, "run", "--config", str(tmp / "equivd.toml")])
    try:
        while not sock.exists():
            time.sleep(0.1)
        time.sleep(3)
        rows = [measure(daemon.pid, sock, args.seconds, "steady")]
        broker.stop()
        rows.append(measure(daemon.pid, sock, args.outage, "broker down"))
        broker.start()
        t0 = time.monotonic()
        rows.append(measure(daemon.pid, sock, 15, "broker back"))
        while status(sock)["mqtt"]["queued"] > 50 and time.monotonic() - t0 < 120:
            time.sleep(0.2)
        drained = time.monotonic() - t0
        end = status(sock)
        daemon.terminate()
        daemon.wait(timeout=60)
        time.sleep(2)
        final = [(s.deliveries, len(s.keys)) for s in subs]
        runs = {k[0] for s in subs for k in s.keys}
        seqs = sorted({k[1] for s in subs for k in s.keys})
        missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - {k[1] for k in subs[0].keys})
        print(json.dumps(dict(queue_drained_after_s=round(drained, 1), subscribers=final, runs=len(runs),
                              windows_seen=len(seqs), missing_at_first_subscriber=len(missing),
                              windows_dropped_by_inference=end["dropped_windows"], mqtt_dropped=end["mqtt"]["dropped"])))
    finally:
        if daemon.poll() is None:
            daemon.kill()
        for s in subs:
            s.proc.terminate()
        broker.stop()


if __name__ == "__main__":
    main()
