"""Front-end throughput: `equivd features` versus the numpy/scipy implementation of the same
definition (bench/frontend_reference.py), on the same 10-minute 16 kHz file, interleaved in one run.

    make bench            # or: python3 bench/frontend_bench.py --equivd .build/release/equivd

Both sides are timed as whole processes (read the WAV, compute every window; equivd also plans
FFTW and starts its runtime), and each also reports its own in-process compute time. With
--alloc-check (needs valgrind), a 30 s file is run under callgrind collecting only inside FrontEnd.process, and any allocator that runs
there is listed: "none" means no allocation per frame or window after construction.
"""

import argparse
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import scipy.io.wavfile

HERE = pathlib.Path(__file__).resolve().parent
RATE = 16000


def make_audio(path, seconds, seed=7):
    """A machine-like test signal: shaft harmonics with a slow speed wobble, over noise."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * (25 * t + 0.2 * np.sin(2 * np.pi * 0.01 * t))
    x = sum(0.4 / h * np.sin(h * phase) for h in (4, 6, 8, 12, 48))
    x += 0.02 * rng.standard_normal(len(t))
    scipy.io.wavfile.write(path, RATE, (x / np.abs(x).max() * 0.8 * 32767).astype(np.int16))


def timed(cmd):
    started = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - started, out


ALLOCATORS = re.compile(r"\b(malloc|calloc|realloc|posix_memalign|aligned_alloc|swift_slowAlloc)\b")


def allocators_inside_frontend(equivd, path):
    """Runs equivd under callgrind, collecting only inside FrontEnd.process (every frame and
    window after construction), and returns the allocator functions that ran there."""
    out_file = HERE / "data" / "callgrind.out"
    # Debian's valgrind 3.19 cannot read Swift 6.3's DWARF: run a copy without it (the symbol
    # table, which --toggle-collect needs, stays).
    stripped = HERE / "data" / "equivd-nodebug"
    subprocess.run(["objcopy", "--strip-debug", equivd, str(stripped)], check=True)
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
                    "--toggle-collect=$s8EquivDSP8FrontEndC7process*", str(stripped), "features", str(path)],
                   check=True, capture_output=True)
    stripped.unlink()
    report = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out_file)],
                            check=True, capture_output=True, text=True).stdout
    out_file.unlink()
    total = re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", report).group(1)
    return total, sorted({m.group(1) for m in ALLOCATORS.finditer(report)})


def peak_rss_mib(cmd):
    """Peak resident memory of `cmd`, measured in a fresh interpreter so nothing else counts."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
             "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True)
    return int(out.stdout) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--equivd", default=str(HERE.parent / ".build/release/equivd"))
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--alloc-check", action="store_true")
    ap.add_argument("--memory-check", action="store_true",
                    help="peak RSS of equivd on a 2-hour file versus a 1-minute one")
    args = ap.parse_args()

    audio = HERE / "data" / f"machine-{args.minutes:g}min.wav"
    make_audio(audio, args.minutes * 60)
    seconds = args.minutes * 60
    reference = [sys.executable, str(HERE / "frontend_reference.py"), str(audio)]
    equivd = [args.equivd, "features", str(audio)]

    ours, theirs, ours_inner, theirs_inner = [], [], [], []
    for i in range(args.repeats):
        wall, out = timed(equivd)
        ours.append(wall)
        ours_inner.append(float(re.search(r"windows in ([\d.]+) s", out).group(1)))
        wall, out = timed(reference)
        theirs.append(wall)
        theirs_inner.append(float(re.search(r"audio in ([\d.]+) s", out).group(1)))
        print(f"run {i + 1}: equivd {ours[-1]:.2f} s, numpy/scipy {theirs[-1]:.2f} s", file=sys.stderr)

    def row(name, walls, inner):
        w, c = statistics.median(walls), statistics.median(inner)
        return f"| {name} | {w:.2f} | {seconds / w:.0f} | {c:.2f} | {seconds / c:.0f} |"

    ratio_wall = statistics.median(theirs) / statistics.median(ours)
    ratio_inner = statistics.median(theirs_inner) / statistics.median(ours_inner)
    print(f"\n{args.minutes:g} min of 16 kHz audio, median of {args.repeats} interleaved runs "
          f"({os.cpu_count()} cores, numpy {np.__version__}, Python {sys.version.split()[0]})\n")
    print("| front end | process s | audio-s per s | compute s | audio-s per s (compute) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(row("equivd features (Swift, FFTW float)", ours, ours_inner))
    print(row("numpy/scipy reference (float64, sparse filterbank)", theirs, theirs_inner))
    print(f"\nequivd is {ratio_wall:.1f}x faster as a process, {ratio_inner:.1f}x in compute alone.")

    if args.alloc_check:
        if not shutil.which("valgrind"):
            sys.exit("--alloc-check needs valgrind (apt-get install valgrind)")
        clip = HERE / "data" / "machine-30s.wav"
        make_audio(clip, 30)
        instructions, allocators = allocators_inside_frontend(args.equivd, clip)
        print(f"\nallocation check (callgrind, 30 s = 59 windows, {instructions} instructions inside "
              f"FrontEnd.process): allocators called there: {', '.join(allocators) or 'none'}")


    if args.memory_check:
        short, long = HERE / "data" / "machine-1min.wav", HERE / "data" / "machine-120min.wav"
        make_audio(short, 60)
        if not long.exists():  # 230 MB: let sox make it rather than hold it in numpy
            subprocess.run(["sox", "-R", "-n", "-r", str(RATE), "-b", "16", "-c", "1", str(long), "synth",
                            "7200", "sine", "100", "pinknoise", "remix", "1v0.3,2v0.05"], check=True)
        a, b = peak_rss_mib([args.equivd, "features", str(short)]), peak_rss_mib([args.equivd, "features", str(long)])
        print(f"\npeak RSS of equivd features: {a:.1f} MiB for 1 min, {b:.1f} MiB for 120 min "
              f"({long.stat().st_size / 2**20:.0f} MiB file)")


if __name__ == "__main__":
    main()
