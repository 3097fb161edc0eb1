"""A window is decided bit for bit the same whatever ran in the process before it.

Live capture and replay differ in what the heap held before a window (other files, other
clients, a reload), so any dependence on buffer alignment or uninitialised memory would make
live predictions drift from replay. Each kernel the CPU runs is checked: two `equivd replay`
processes with different heap histories (one decides other files first; glibc fills their
fresh allocations with different bytes) must print identical predictions for the same file.
"""

import json
import os
import subprocess

import pytest

from test_service import EQUIVD, ROOT, conv_kernels

TARGET = ROOT / "Samples/misalignment-speed+5st.wav"
OTHERS = [ROOT / "Samples/gear-nominal.wav", ROOT / "Samples/bearing-speed-7st.wav"]
# Everything but the timing of the run itself.
TIMING = {"latency_ms", "wall_start", "wall_end"}


def predictions(files, kernel, perturb):
    env = dict(os.environ, EQUIVD_CONV_ISA=kernel, MALLOC_PERTURB_=str(perturb))
    out = subprocess.run([EQUIVD, "replay", *map(str, files), "--json", "--mode", "topk"], env=env,
                         check=True, capture_output=True, text=True).stdout
    events = [json.loads(line) for line in out.splitlines()]
    return [{k: v for k, v in e.items() if k not in TIMING} for e in events if e["source"] == str(TARGET)]


@pytest.mark.parametrize("kernel", conv_kernels())
def test_same_window_same_bits_across_heap_histories(kernel):
    alone = predictions([TARGET], kernel, perturb=85)
    after_others = predictions([*OTHERS, TARGET], kernel, perturb=170)
    assert len(alone) >= 3
    # JSON numbers are Swift's shortest round-trip form, so equal text is equal bits.
    assert after_others == alone
