"""Deterministic line-side machine sounds (the physics is written down in Training/README.md).

A machine is a rotating shaft at fr = rpm/60 Hz. Everything locked to the rotation (harmonic
orders, gear mesh, bearing-defect impulse rate, sub-harmonics) scales with speed; mains hum, the
structural resonance a bearing impact rings, factory ambience and knocks do not. `render` makes
one clip of one machine at a speed factor, so the same machine can be heard at nominal speed and
played faster or slower ("speed shift"), and `resample_shift` makes the exact group action (the
whole recording resampled).
"""

from dataclasses import dataclass, field

import numpy as np
import scipy.signal

RATE = 16000
NOMINAL_RPM = 1500.0
# Rotation-locked content stays inside [2·fmin, fmax/2] = [120, 3840] Hz at nominal speed, so that
# from 0.5× to 2× speed it remains inside the front end's band [60, 7680] Hz.
LOCKED_BAND = (120.0, 3840.0)

CLASSES = ("normal", "imbalance", "misalignment", "bearing", "gear", "looseness")


@dataclass
class Machine:
    """One physical machine: what varies from unit to unit, drawn once from a seed."""

    label: str
    rpm: float                       # this unit's nominal speed (±3 % around 1500 rpm)
    order_gains: dict = field(default_factory=dict)   # harmonic order → amplitude
    teeth: int = 60                  # gear mesh at teeth·fr
    bpfo: float = 3.58               # outer-race defect rate, in orders
    resonance_hz: float = 2800.0     # structural resonance rung by bearing impacts (fixed in Hz)
    resonance_q: float = 12.0
    mains_hz: float = 50.0
    mains_gain: float = 0.02
    ambience_gain: float = 0.01
    level: float = 0.2               # overall level of the machine's own sound
    severity: float = 1.0            # how pronounced the fault is (0.5 … 1.5)

    @property
    def fr(self):
        return self.rpm / 60.0


def make_machine(label, rng):
    """Draws one unit of a class: its signature plus machine-to-machine variation."""
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}; known: {', '.join(CLASSES)}")
    m = Machine(label=label, rpm=NOMINAL_RPM * rng.uniform(0.97, 1.03))
    fr = m.fr
    # A base signature every unit has: vane-pass family (6 vanes) and a decaying comb of orders.
    for order in range(5, 41):
        if LOCKED_BAND[0] <= order * fr <= LOCKED_BAND[1]:
            base = 0.25 / order ** 0.8 * rng.lognormal(0, 0.5)
            if order % 6 == 0:
                base *= 3.0
            m.order_gains[order] = base
    m.teeth = int(rng.choice([57, 60, 63]))
    m.bpfo = rng.uniform(3.4, 3.7)
    m.resonance_hz = rng.uniform(2200, 3400)
    m.resonance_q = rng.uniform(8, 16)
    m.mains_gain = rng.uniform(0.005, 0.04)
    m.ambience_gain = rng.uniform(0.004, 0.03)
    m.level = rng.uniform(0.08, 0.3)
    m.severity = rng.uniform(0.5, 1.5)
    return m


def _tone(freq, t, phase, amplitude):
    return amplitude * np.sin(2 * np.pi * freq * t + phase)


def render(machine, seconds, rng, speed=1.0, parts=False):
    """One clip of `machine` running at `speed` × its nominal rpm, as float32 at RATE Hz. With
    `parts`, also the part of it that stays at its frequency whatever the speed (the same draws,
    scaled as the clip was)."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    fr = machine.fr * speed
    s = machine.severity
    # Small random speed wobble (±0.3 %), shared by every locked component.
    wobble = 1 + 0.003 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
    phase_of = lambda order: 2 * np.pi * order * fr * np.cumsum(wobble) / RATE  # noqa: E731
    locked = np.zeros(n)

    def add_order(order, amplitude):
        nonlocal locked
        if LOCKED_BAND[0] <= order * machine.fr <= LOCKED_BAND[1]:  # judged at nominal speed
            locked += amplitude * np.sin(phase_of(order) + rng.uniform(0, 2 * np.pi))

    for order, gain in machine.order_gains.items():
        add_order(order, gain)
    # Gear mesh: teeth·fr with weak ±1× sidebands (strong ones mean wear).
    sideband = 0.3 * s if machine.label == "gear" else 0.05
    add_order(machine.teeth, 0.12)
    add_order(machine.teeth - 1, 0.12 * sideband)
    add_order(machine.teeth + 1, 0.12 * sideband)

    if machine.label == "imbalance":
        # 1× is below the band: it shows as 1× amplitude modulation of everything locked.
        depth = min(0.9, 0.5 * s)
        locked *= 1 + depth * np.sin(phase_of(1))
        for order in (5, 7):
            add_order(order, 0.15 * s)
    elif machine.label == "misalignment":
        # The 2× and 3× families rise: even and triple orders up the band.
        for order in range(6, 41):
            if order % 2 == 0 or order % 3 == 0:
                add_order(order, 0.12 * s / order ** 0.5)
    elif machine.label == "gear":
        add_order(2 * machine.teeth, 0.06 * s)
        for k in (2, 3):
            add_order(machine.teeth - k, 0.04 * s)
            add_order(machine.teeth + k, 0.04 * s)
    elif machine.label == "looseness":
        # Half orders (0.5× sub-harmonics) and a rise of broadband rattle.
        for order in np.arange(5.5, 40, 1.0):
            add_order(order, 0.06 * s / order ** 0.5)
    locked *= machine.level

    fixed = np.zeros(n)
    if machine.label == "bearing":
        # Outer-race impacts at bpfo·fr ring the (fixed-frequency) structural resonance.
        period = RATE / (machine.bpfo * fr)
        impulses = np.zeros(n)
        jitter = rng.normal(0, 0.02 * period, size=int(n / period) + 2)
        for k, j in enumerate(jitter):
            i = int(k * period + j)
            if 0 <= i < n:
                impulses[i] = rng.uniform(0.6, 1.0)
        # Each impact rings the resonance: a damped sinusoid with time constant Q/(π·f).
        tau = machine.resonance_q / (np.pi * machine.resonance_hz)
        tr = np.arange(int(5 * tau * RATE) + 1) / RATE
        ring = np.exp(-tr / tau) * np.sin(2 * np.pi * machine.resonance_hz * tr)
        fixed += machine.level * 0.8 * s * scipy.signal.fftconvolve(impulses, ring)[:n]
    if machine.label == "looseness":
        fixed += machine.level * 0.04 * s * rng.standard_normal(n)
    # Mains hum at 50 Hz and its harmonics: fixed in Hz whatever the machine does.
    for h in range(2, 21):
        fixed += _tone(machine.mains_hz * h, t, rng.uniform(0, 2 * np.pi), machine.mains_gain / h)
    # Factory ambience: pink-ish noise with a slowly drifting level.
    white = rng.standard_normal(n)
    pink = scipy.signal.lfilter([0.049922, -0.095993, 0.050612, -0.004408], [1, -2.494956, 2.017265, -0.522189], white)
    drift = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 2 * np.pi))
    fixed += machine.ambience_gain * 3 * pink * drift
    # Random knocks: a few short broadband clicks with a quick decay.
    for _ in range(rng.poisson(0.5 * seconds)):
        i = rng.integers(0, max(1, n - 400))
        fixed[i:i + 400] += rng.uniform(0.05, 0.3) * rng.standard_normal(400) * np.exp(-np.arange(400) / 60)

    x = locked + fixed
    gain = 10 ** (rng.uniform(-10, 6) / 20)  # microphone placement and gain: ±8 dB around nominal
    x *= gain
    fixed *= gain
    peak = np.max(np.abs(x))
    if peak > 0.99:
        x *= 0.99 / peak
        fixed *= 0.99 / peak
    if parts:
        return x.astype(np.float32), fixed.astype(np.float32)
    return x.astype(np.float32)


def resample_shift(x, semitones):
    """The recording played `semitones` higher: resampled by 2^(−s/12) and kept at RATE."""
    ratio = 2.0 ** (-semitones / 12.0)
    frac = np.round(ratio * 1000).astype(int)
    return scipy.signal.resample_poly(x, frac, 1000).astype(np.float32)


def speed_factor(semitones):
    """The speed factor that moves rotation-locked content by `semitones`."""
    return 2.0 ** (semitones / 12.0)
