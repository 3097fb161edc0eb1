"""What mode `partial` costs beyond mode `canon`, in classifier calls: `equivd replay` over the
same files in modes vanilla, canon, partial and groupavg, pinned to one core (so the pipeline's
two stages add up), interleaved, several rounds. One classifier call is (groupavg − vanilla) / 48;
partial's extra is partial − canon. Medians of ms per window and their ratio are printed.
Run: `make bench-partial` (or `.venv/bin/python bench/partial_bench.py --equivd .build/release/equivd`).
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODES = ("vanilla", "canon", "partial", "groupavg")


def replay(equivd, files, mode, report):
    subprocess.run(["taskset", "-c", "0", equivd, "replay", *files, "--mode", mode, "--quiet", "--report", report,
                    "--classifier-min-p", "0"], check=True, stderr=subprocess.DEVNULL)
    return json.loads(pathlib.Path(report).read_text())["ms_per_window"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--equivd", default=str(ROOT / ".build/release/equivd"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("files", nargs="*", help="audio files (default: Samples/*.wav)")
    a = ap.parse_args()
    files = a.files or sorted(map(str, (ROOT / "Samples").glob("*.wav")))
    ms = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.rounds):
            for mode in MODES:
                ms[mode].append(replay(a.equivd, files, mode, f"{tmp}/{mode}.json"))
    median = {mode: statistics.median(v) for mode, v in ms.items()}
    call = (median["groupavg"] - median["vanilla"]) / 48
    extra = median["partial"] - median["canon"]
    for mode in MODES:
        print(f"{mode:9s} ms/window median {median[mode]:.3f}  runs {' '.join(f'{v:.3f}' for v in ms[mode])}")
    print(f"one classifier call {call:.3f} ms; partial − canon {extra:.3f} ms = {100 * extra / call:.1f} % of a call")


if __name__ == "__main__":
    main()
