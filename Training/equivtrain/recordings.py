"""Real recordings nobody here made, as held-out data sets: single notes of sampled General-MIDI
instruments, rendered by fluidsynth from two Debian soundfonts, plus resample-shifted copies
(pitch and tempo together) and their "ceiling" copies (each shift undone by the true factor).
Nothing is committed: `scripts/fetch-recordings.sh` installs the packages and renders it all into
data/recordings/ (git-ignored, about 690 MB, 40 s on 2 cores). Deterministic given the seed (it
picks the velocities; sox runs without dither).

  PYTHONPATH=Training .venv/bin/python -m equivtrain.recordings --out data/recordings --set instruments
  ... --baseline          # also YAMNet's accuracy on every set (data/pretrained/yamnet.onnx)

Split (`--set instruments`, instruments/): train = TimGM6mb.sf2, 19 programs, 25 notes (every
semitone over two octaves around each program's centre) x 2 velocities = 950 clips of 3 s (note
held 2.5 s); test = FluidR3_GM.sf2, the 15 *other* programs, 8 notes (offsets -10, -7, ... +11) x
2 velocities = 240 clips of 4 s (note held 3.5 s, so +12 semitones still leaves 2 s).
`--set registers` (registers/): the same programs, each only within a semitone of its centre
note: train = the 19 training programs from both fonts, 3 notes x 6 velocities = 684 clips; test
= FluidR3's 15 other programs, 3 notes x 4 velocities = 180 clips. Test differs from train in
soundfont (other samples, other makers) and program: no recording or instrument patch of the
test set is heard in training. Training notes cover every semitone: on a sparser grid (every 3
semitones, the first version) the canonicalizer learns the grid as the canonical pose
(docs/results.md, "Real recordings"). Clips are peak-normalised to 0.5
(YAMNet's log-mel is not level-invariant). Seven families, each with YAMNet classes of its own;
reeds (saxophone, clarinet: 22 % for YAMNet on the test set) were swapped for mallet percussion.

Speech is skipped (`speech`): the Asterisk prompts hold one take per prompt, at most three takes
(different prompts that say the same word) of any word, at 8 kHz, and single words last under
1 s, shorter than one 1.502 s window.

Sources and licences (from /usr/share/doc/<package>/copyright, Debian 12):
- fluid-soundfont-gm 3.1 (FluidR3_GM.sf2, the test set): Frank Wen (c) 2000-2002, 2008, built
  partly from public-domain samples; MIT licence.
- timgm6mb-soundfont 1.3 (TimGM6mb.sf2, the training set): Tim Brechbill (c) 2004, David Bolton
  2010; GPL-2 (samples his own, public domain or GPL, per the author).
- fluidsynth 2.3.1 (renders): LGPL-2.1+.  sox 14.4.2 (resamples): GPL-2+ or LGPL-2.1+.
- Not used: asterisk-core-sounds-en (Allison Smith, CC-BY-SA-3.0), freepats (GUS .pat patches,
  which fluidsynth does not load; GPL-2+ with a composition exception).
"""

import argparse
import csv
import json
import pathlib
import struct
import subprocess
import tempfile

import numpy as np
import scipy.io.wavfile

RATE = 16000
SF2 = pathlib.Path("/usr/share/sounds/sf2")
TRAIN_FONT, TEST_FONT = "TimGM6mb", "FluidR3_GM"
SHIFTS = (-12, -9, -6, -3, -2, 2, 3, 6, 9, 12)
WINDOW = 1.502                             # seconds an equivd decision reads

# The sets: per split, the soundfonts, the notes (semitones from a program's centre) and one
# velocity band per take of each note (a velocity is drawn from each band). The test split is
# always FluidR3's programs that training never plays.
#   instruments: every pitch over two octaves, TimGM6mb only; the test notes lie between the
#     training notes. Pitch is spread on purpose, so the set has no canonical pose.
#   registers: each program near its centre note only (±1 semitone), as a machine runs near its
#     nominal speed: a set that has a pose. Training plays the training programs from both fonts,
#     as a plant records several units of a kind; more takes per note make up for fewer notes.
SETS = {
    "instruments": {"train": ((TRAIN_FONT,), range(-12, 13), ((50, 80), (90, 120))),
                    "test": ((TEST_FONT,), (-10, -7, -4, -1, 2, 5, 8, 11), ((55, 85), (95, 125)))},
    "registers": {"train": ((TRAIN_FONT, TEST_FONT), (-1, 0, 1),
                            ((40, 55), (55, 70), (70, 85), (85, 100), (100, 115), (115, 128))),
                  "test": ((TEST_FONT,), (-1, 0, 1), ((45, 65), (65, 85), (85, 105), (105, 125)))},
}

# family: {GM program (0-based): centre MIDI note, in the instrument's natural range}, then the
# programs kept for training; the others are the test set's.
FAMILIES = {
    "piano": ({0: 60, 2: 60, 4: 60, 1: 60, 3: 60, 5: 60}, (0, 2, 4)),
    "organ": ({16: 60, 18: 60, 20: 60, 17: 60, 19: 60}, (16, 18, 20)),
    "guitar": ({24: 55, 26: 57, 25: 55, 27: 57}, (24, 26)),
    "strings": ({40: 74, 42: 50, 48: 62, 41: 64, 49: 62}, (40, 42, 48)),
    "brass": ({56: 68, 58: 41, 61: 60, 57: 53, 60: 56}, (56, 58, 61)),
    "flute": ({73: 79, 75: 76, 72: 88, 74: 77}, (73, 75)),
    "mallet": ({9: 84, 10: 84, 14: 67, 8: 84, 11: 72}, (9, 10, 14)),
}

# family: YAMNet (AudioSet) output indices whose best sigmoid speaks for it. Parents shared by
# two families (Keyboard (musical) 147, Wind instrument 190, Musical instrument 133) are left
# out: they cannot tell families apart.
YAMNET_LABELS = {
    "piano": [148, 149],            # Piano, Electric piano
    "organ": [150, 151, 152],       # Organ, Electronic organ, Hammond organ
    "guitar": [135, 136, 138],      # Guitar, Electric guitar, Acoustic guitar
    "strings": [184, 185, 186, 188],  # Bowed string instrument, String section, Violin, Cello
    "brass": [180, 181, 182, 183],  # Brass instrument, French horn, Trumpet, Trombone
    "flute": [191],                 # Flute
    # Tubular bells, Mallet percussion, Marimba/xylophone, Glockenspiel, Vibraphone
    "mallet": [173, 174, 175, 176, 177],
}


def midi(program, notes, slot, held):
    """A type-0 Standard MIDI File (1 tick = 1 ms) playing `notes` [(key, velocity)] one per `slot`
    seconds on channel 0, each held `held` s and silenced (All Sound Off) at the slot's end."""
    def vlq(n):
        out = [n & 0x7F]
        while n > 127:
            n >>= 7
            out.append(0x80 | (n & 0x7F))
        return bytes(reversed(out))

    events, now = [(0, b"\xff\x51\x03" + (500000).to_bytes(3, "big")), (0, bytes([0xC0, program]))], 0
    for i, (key, velocity) in enumerate(notes):
        start = round(i * slot * 1000) + 50  # 50 ms of silence before each attack
        for t, data in ((start, [0x90, key, velocity]), (start + round(held * 1000), [0x80, key, 0]),
                        (round((i + 1) * slot * 1000) - 10, [0xB0, 120, 0])):
            events.append((t - now, bytes(data)))
            now = t
    events.append((0, b"\xff\x2f\x00"))
    track = b"".join(vlq(dt) + data for dt, data in events)
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 500) + b"MTrk" + struct.pack(">I", len(track)) + track


def render(font, program, notes, seconds, held, gap=1.0):
    """Mono clips (float, peak 0.5) of `notes` played by `program` of soundfont `font`: one
    fluidsynth run per program (loading a soundfont costs more than rendering a note), cut into
    `seconds`-long clips. Reverb and chorus off: the soundfont's own samples, nothing added."""
    slot = seconds + gap
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = pathlib.Path(tmp) / "n.mid", pathlib.Path(tmp) / "n.wav"
        mid.write_bytes(midi(program, notes, slot, held))
        subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-F", str(wav), "-T", "wav",
                        "-r", str(RATE), "-g", "0.8", str(SF2 / f"{font}.sf2"), str(mid)],
                       check=True, capture_output=True)
        rate, audio = scipy.io.wavfile.read(wav)
    assert rate == RATE
    audio = audio.astype(np.float64).reshape(len(audio), -1).mean(axis=1)
    n, step = round(seconds * RATE), round(slot * RATE)
    clips = []
    for i in range(len(notes)):
        clip = np.zeros(n)
        part = audio[i * step:i * step + n]
        clip[:len(part)] = part
        peak = np.abs(clip).max()
        if peak == 0:
            raise RuntimeError(f"{font} program {program} note {notes[i]}: silent")
        clips.append(0.5 * clip / peak)
    return clips


def write_wav(path, audio):
    scipy.io.wavfile.write(path, RATE, np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16))


def write_manifest(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows(rows)


def instruments(out, name="instruments", seed=0):
    """Renders the set `name` (SETS) into {train,test}/ with manifests under `out`/`name`;
    returns test.csv's path."""
    root = pathlib.Path(out) / name
    rng = np.random.default_rng(seed)
    for split, seconds, held in (("train", 3.0, 2.5), ("test", 4.0, 3.5)):
        fonts, offsets, bands = SETS[name][split]
        (root / split).mkdir(parents=True, exist_ok=True)
        rows = []
        for font in fonts:
            for family, (centres, train_programs) in FAMILIES.items():
                for program, centre in centres.items():
                    if (program in train_programs) != (split == "train"):
                        continue
                    notes = [(centre + o, int(rng.integers(*band))) for o in offsets for band in bands]
                    for (key, velocity), clip in zip(notes, render(font, program, notes, seconds, held)):
                        wav = f"{family}-{font}-p{program:03d}-n{key}-v{velocity}.wav"
                        write_wav(root / split / wav, clip)
                        rows.append((f"{split}/{wav}", family))
                print(f"{name} {split} {font}: {family} done ({len(rows)} clips)", flush=True)
        write_manifest(root / f"{split}.csv", rows)
    (root / "yamnet_label_map.json").write_text(json.dumps(YAMNET_LABELS) + "\n")
    return root / "test.csv"


def speech(out, seed=0):
    """Skipped, on purpose: Asterisk's English prompts (asterisk-core-sounds-en, Allison Smith)
    hold one take of each prompt; the most repeated word ("for", "extension", "minutes") has three
    takes, each a separate prompt file, and single words are 8 kHz recordings under 1 s, shorter
    than an equivd window. No class would have enough examples to train and test on."""
    print("speech: skipped (at most 3 takes of any word, each < 1 s at 8 kHz; see recordings.speech)")
    return None


def sox_speed(src, dst, factor):
    """Resamples the whole recording by `factor` (pitch and tempo together), back to 16 kHz. No
    dither (-D): sox's dither is random per run; rounding keeps the sets deterministic."""
    subprocess.run(["sox", "-D", str(src), str(dst), "speed", f"{factor:.10f}", "rate", "-v", str(RATE)],
                   check=True, capture_output=True)


def shifted(manifest, shifts=SHIFTS):
    """For each clip of `manifest`: test_shift_{s}/ (shifted by s semitones: duration x 2^(-s/12))
    and ceiling_shift_{s}/ (that copy resampled back by the exact inverse), with manifests beside
    `manifest`."""
    manifest = pathlib.Path(manifest)
    root = manifest.parent
    with open(manifest) as f:
        rows = list(csv.DictReader(f))
    for s in shifts:
        factor = 2.0 ** (s / 12)
        for kind in ("test_shift", "ceiling_shift"):
            (root / f"{kind}_{s}").mkdir(exist_ok=True)
        shift_rows, ceiling_rows = [], []
        for r in rows:
            stem = pathlib.Path(r["path"]).stem
            moved = f"test_shift_{s}/{stem}_shift{s:+d}.wav"
            back = f"ceiling_shift_{s}/{stem}_ceil{s:+d}.wav"
            sox_speed(root / r["path"], root / moved, factor)
            sox_speed(root / moved, root / back, 1 / factor)
            shift_rows.append((moved, r["label"]))
            ceiling_rows.append((back, r["label"]))
        write_manifest(root / f"test_shift_{s}.csv", shift_rows)
        write_manifest(root / f"ceiling_shift_{s}.csv", ceiling_rows)
        print(f"shift {s:+d}: {len(rows)} clips and their ceilings", flush=True)


def logmel(audio, offset=0.001):
    """YAMNet's front end, frames x 64: what torchaudio's MelSpectrogram(16000, n_fft=512,
    win_length=400, hop_length=160, f_min=125, f_max=7500, n_mels=64, power=1.0, center=False,
    mel_scale="htk", norm=None) computes (periodic Hann of 400 centred in 512 points, magnitude,
    HTK triangles), then log(mel + offset). numpy only: torchaudio is not in the project's Python."""
    window = np.zeros(512)
    window[56:456] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = 1 + (len(audio) - 512) // 160
    idx = np.arange(512)[None] + 160 * np.arange(frames)[:, None]
    magnitude = np.abs(np.fft.rfft(audio[idx] * window, axis=1))  # frames x 257
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    points = 700 * (10 ** (np.linspace(mel(125), mel(7500), 66) / 2595) - 1)
    freqs = np.linspace(0, RATE // 2, 257)
    slopes = points[None] - freqs[:, None]
    fb = np.maximum(0, np.minimum(-slopes[:, :-2] / np.diff(points)[:-1], slopes[:, 2:] / np.diff(points)[1:]))
    return np.log(magnitude @ fb + offset)


def yamnet_accuracy(manifest, model="data/pretrained/yamnet.onnx", offset=0.001, labels=YAMNET_LABELS):
    """YAMNet alone on `manifest`: the fraction of patches whose best family (the max sigmoid
    over its label indices) is the clip's, overall and per family. Patches: 96 log-mel frames at 0
    and 0.5 s into the clip's middle 1.502 s, as equivd's windows are placed."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    families = list(labels)
    manifest = pathlib.Path(manifest)
    with open(manifest) as f:
        rows = list(csv.DictReader(f))
    hits = {k: [] for k in families}
    for r in rows:
        rate, audio = scipy.io.wavfile.read(manifest.parent / r["path"])
        audio = audio.astype(np.float64) / 32768
        n = round(WINDOW * rate)
        start = max(0, (len(audio) - n) // 2)
        features = logmel(audio[start:start + n], offset).astype(np.float32)
        for p in (0, 50):
            if p + 96 > len(features):
                continue
            logits = session.run(None, {"audio": features[None, None, p:p + 96]})[0][0]
            best = {k: logits[labels[k]].max() for k in families}  # sigmoid is monotonic
            hits[r["label"]].append(max(best, key=best.get) == r["label"])
    every = [h for k in families for h in hits[k]]
    return float(np.mean(every)), {k: float(np.mean(v)) if v else float("nan") for k, v in hits.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/recordings")
    ap.add_argument("--set", default="instruments", choices=sorted(SETS), help="which set to render (SETS)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", action="store_true", help="print YAMNet's accuracy on every set")
    ap.add_argument("--model", default="data/pretrained/yamnet.onnx")
    args = ap.parse_args(argv)
    test = instruments(args.out, args.set, args.seed)
    speech(args.out, args.seed)
    shifted(test, SHIFTS)
    if args.baseline:
        root = test.parent
        sets = ["train", "test"] + [f"{k}_shift_{s}" for s in SHIFTS for k in ("test", "ceiling")]
        for offset in (0.001, 1e-6):
            for name in sets:
                total, per = yamnet_accuracy(root / f"{name}.csv", args.model, offset)
                print(f"yamnet offset={offset:g} {name:18s} {total:.3f}  "
                      + " ".join(f"{k}={v:.2f}" for k, v in per.items()), flush=True)


if __name__ == "__main__":
    main()
