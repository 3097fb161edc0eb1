"""Where results go: the tables of the bundles, written into their marked sections of
docs/results.md."""

import pathlib

from . import evaluate


def write_table(data_root, bundle_dir, noprior_dir, results_md):
    """The results table and the shift-reading table of the bundles, printed and put into their
    sections of `results_md`."""
    for marker, text in zip(("table", "shifts"), evaluate.bundle_tables(data_root, bundle_dir, noprior_dir)):
        print(text, flush=True)
        write_section(results_md, marker, text)


def write_section(path, marker, text):
    """Puts `text` between `<!-- marker -->` and `<!-- /marker -->` in the file at `path`
    (appended with the markers if they are not there), leaving the rest of the file as it is."""
    path = pathlib.Path(path)
    begin, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        new = old[:old.index(begin) + len(begin)] + "\n" + text + "\n" + old[old.index(end):]
    else:
        new = old + f"\n{begin}\n{text}\n{end}\n"
    path.write_text(new)
