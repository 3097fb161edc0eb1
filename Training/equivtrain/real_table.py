"""The results on real recordings (`equivtrain.recordings`), through `equivd replay`: for each
bundle, the frozen classifier alone (a), with the canonicalizer (c), with the service's top-3
fallback (d), and the ceiling (o) — the shifted clip resampled back by the true factor, then the
classifier alone — on the nominal held-out clips and at every resample shift.

  PYTHONPATH=Training .venv/bin/python -m equivtrain real-table --recordings data/recordings/instruments \\
      --bundle "YAMNet (frozen, AudioSet)=data/bundles/yamnet-instruments" --bundle "…=…"
"""

import json
import pathlib
import subprocess

from .recordings import SHIFTS
from .report import write_section

ROWS = [("(a) classifier alone", "test", "vanilla", []),
        ("(c) + canonicalizer", "test", "canon", []),
        ("(d) (c) + top-3 fallback", "test", "topk", ["--classifier-min-p", "0"]),
        ("(o) ceiling: shift undone exactly, classifier alone", "ceiling", "vanilla", [])]


def accuracy(equivd, manifest, bundle, mode, extra, report):
    """% of labelled windows right, by `equivd replay` (idle windows left out, abstained ones wrong)."""
    subprocess.run([equivd, "replay", str(manifest), "--bundle", str(bundle), "--mode", mode, "--quiet",
                    "--report", str(report), *extra], check=True, stderr=subprocess.DEVNULL)
    return json.loads(pathlib.Path(report).read_text())["accuracy"]


def table(recordings, bundle, equivd, work):
    """Markdown rows for one bundle: nominal, each shift, and the mean over shifts."""
    recordings, work = pathlib.Path(recordings), pathlib.Path(work)
    work.mkdir(parents=True, exist_ok=True)
    lines = []
    for title, kind, mode, extra in ROWS:
        figures = []
        for s in (0, *SHIFTS):
            manifest = recordings / ("test.csv" if s == 0 else f"{kind}_shift_{s}.csv")
            figures.append(accuracy(equivd, manifest, bundle, mode, extra, work / f"{mode}-{kind}-{s}.json"))
        mean = sum(figures[1:]) / len(SHIFTS)
        lines.append(f"| {title} | " + " | ".join(f"{f:.1f}" for f in figures) + f" | {mean:.1f} |")
        print(lines[-1], flush=True)
    return lines


def run(recordings, bundles, equivd, out, work):
    """`bundles`: [(name, folder)]. Writes the section `real-table-<set>` of `out`, the set named
    by the recordings' folder."""
    header = ("| row | nominal | " + " | ".join(f"{s:+d}" for s in SHIFTS) + " | mean shifted |\n"
              "| --- | ---: | " + " | ".join("---:" for _ in SHIFTS) + " | ---: |")
    text = []
    for name, folder in bundles:
        manifest = json.loads((pathlib.Path(folder) / "bundle.json").read_text())
        text += [f"**{name}** (`{folder}`: {len(manifest['classes'])} classes, "
                 f"{manifest.get('provenance', {}).get('classifier', 'classifier')})", "", header]
        text += table(recordings, folder, equivd, pathlib.Path(work) / pathlib.Path(folder).name)
        text.append("")
    write_section(out, f"real-table-{pathlib.Path(recordings).name}", "\n".join(text).rstrip())
