"""Start-up of `equivd run`: from the exec to READY=1 on a notify socket of the script's own, the
moment systemd considers the service up. The bundle is loaded and hashed, the models planned,
the front end's FFT planned and its filterbank built, the source opened and the socket bound in
that time.

    .venv/bin/python bench/startup_bench.py --equivd .build/release/equivd [--runs 15]

Each run plays a bundled sample as a file source, so no sound card is involved; the daemon is
stopped with SIGTERM once READY arrives. Prints the median, min and max in milliseconds, pinned
to one core, with the CPU named.
"""

import argparse
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def once(equivd, folder, core):
    notify_path = folder / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path))
    started = time.perf_counter()
    daemon = subprocess.Popen(["taskset", "-c", str(core), equivd, "run", "--file", str(ROOT / "Samples/gear-nominal.wav"),
                               "--socket", str(folder / "s.sock"), "--bundle", str(ROOT / "Models")], env=env)
    try:
        while b"READY=1" not in notify.recv(4096):
            pass
        return (time.perf_counter() - started) * 1e3
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=10)
        notify.close()
        notify_path.unlink()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--equivd", default=str(ROOT / ".build/release/equivd"))
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)))
    args = ap.parse_args()
    model = next((l.split(":", 1)[1].strip() for l in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                  if l.startswith("model name")), "unknown")
    with tempfile.TemporaryDirectory() as tmp:
        once(args.equivd, pathlib.Path(tmp), args.core)  # warm the page cache
        times = [once(args.equivd, pathlib.Path(tmp), args.core) for _ in range(args.runs)]
    print(f"{model}, core {args.core}: exec to READY=1, {args.runs} runs: median {statistics.median(times):.1f} ms, "
          f"min {min(times):.1f}, max {max(times):.1f}")


if __name__ == "__main__":
    main()
