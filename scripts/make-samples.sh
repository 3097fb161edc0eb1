#!/usr/bin/env bash
# Regenerates Samples/: short synthetic machine sounds at nominal speed and played faster or
# slower with sox's `speed` effect (resampling: the exact pitch-shift group action), in the
# containers and layouts the file source must handle. Deterministic (sox -R).
# The training issue replaces these with class samples from its dataset.
set -euo pipefail
cd "$(dirname "$0")/../Samples"

# A 1500 rpm motor: 25 Hz shaft, rotation-locked lines at 4x, 6x, 8x, 12x (100..300 Hz) and a
# 1.2 kHz gear mesh, over pink noise; 3 s at 16 kHz.
sox -R -n -r 16000 -b 16 -c 1 motor-nominal.wav synth 3 \
    sine 100 sine 150 sine 200 sine 300 sine 1200 pinknoise \
    remix 1v0.30,2v0.20,3v0.25,4v0.12,5v0.10,6v0.04
sox -R motor-nominal.wav motor-up3st.flac speed 300c     # machine 3 semitones (19 %) faster
sox -R motor-nominal.wav motor-down5st.ogg speed -500c   # 5 semitones (25 %) slower, Ogg Vorbis
# The nominal motor as a 2 s, 44.1 kHz stereo recording: exercises resampling and downmixing.
sox -R motor-nominal.wav -r 44100 -c 2 motor-nominal-44k1-stereo.wav trim 0 2
ls -l
