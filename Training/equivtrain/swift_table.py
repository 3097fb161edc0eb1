"""The results table again, through the Swift daemon's own path: `equivd replay` over
the same test clips that `table` evaluated, in each mode, side by side with the Python figures
of docs/results.md.

Rows: (a) vanilla, (c) canon, (d) topk and (p) partial with abstaining off (the Python rows never
abstain), (e) groupavg; and (b), canon with the no-prior bundle, when `models` or `canonicalizers`
has written it. `rows` reruns some of them and keeps the others' lines as they are.
"""

import csv
import json
import pathlib
import re
import subprocess

from .report import write_section

SETS = {"nominal": "test", "speed shift": "speed", "resample shift": "resample"}
ROWS = [("(a) frozen classifier alone", "vanilla", []),
        ("(c) + canonicalizer with prior", "canon", []),
        ("(d) (c) + top-3 fallback", "topk", ["--classifier-min-p", "0"]),
        ("(e) group averaging over 49 shifts", "groupavg", []),
        ("(p) (c), moving back only what turns with the machine", "partial", ["--classifier-min-p", "0"])]


def manifest(folder, out):
    """path,label for every clip of a generated set (the label is the file name's first part)."""
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for wav in sorted(pathlib.Path(folder).glob("*.wav")):
            w.writerow([wav.resolve(), wav.name.split("-")[0]])
    return out


def python_figures(results_md):
    """Row prefix → [nominal, speed, resample] from the table `models` wrote."""
    figures = {}
    for line in pathlib.Path(results_md).read_text().splitlines():
        m = re.match(r"\| (\([a-ep]\)) [^|]*\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", line)
        if m:
            figures[m.group(1)] = [float(m.group(i)) for i in (2, 3, 4)]
    return figures


def kept_lines(out, rerun):
    """The table-swift lines already in `out` of rows not in `rerun` (row letters), by row."""
    text = pathlib.Path(out).read_text()
    begin, end = "<!-- table-swift -->", "<!-- /table-swift -->"
    section = text[text.index(begin) + len(begin):text.index(end)] if begin in text and end in text else ""
    kept = {}
    for line in section.splitlines():
        m = re.match(r"\| \(([a-z])\) ", line)
        if m and m.group(1) not in rerun:
            kept.setdefault(m.group(1), []).append(line)
    return kept


def run(data, bundle, equivd, results_md, out, work, noprior_bundle="data/noprior-bundle", rows=None):
    work = pathlib.Path(work)
    work.mkdir(parents=True, exist_ok=True)
    manifests = {name: manifest(pathlib.Path(data) / folder, work / f"{folder}.csv") for name, folder in SETS.items()}
    python = python_figures(results_md)
    table = [(title, mode, extra, bundle) for title, mode, extra in ROWS]
    kept = kept_lines(out, rows) if rows else {}
    if (pathlib.Path(noprior_bundle) / "canonicalizer.onnx").exists() or "b" in kept:
        table.insert(1, ("(b) + canonicalizer, no prior", "canon", [], str(noprior_bundle)))
    lines = ["| method | set | Python (onnxruntime) | Swift (`equivd replay`) | difference | windows | Swift ms / window |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for title, mode, extra, bundle in table:
        if title[1] in kept:
            lines += kept[title[1]]
            continue
        for i, (name, path) in enumerate(manifests.items()):
            report = work / f"{title[:3].strip('()')}-{mode}-{SETS[name]}.json"
            subprocess.run([equivd, "replay", str(path), "--bundle", bundle, "--mode", mode, "--quiet",
                            "--report", str(report), *extra], check=True, stderr=subprocess.DEVNULL)
            r = json.loads(report.read_text())
            py = python.get(title[:3], [float("nan")] * 3)[i]
            lines.append(f"| {title} | {name} | {py:.1f} | {r['accuracy']:.1f} | {r['accuracy'] - py:+.1f} | "
                         f"{r['labelled_windows']} | {r['ms_per_window']:.2f} |")
            print(lines[-1], flush=True)
    write_section(out, "table-swift", "\n".join(lines))
