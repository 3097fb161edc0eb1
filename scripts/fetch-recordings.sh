#!/usr/bin/env bash
# Real recordings nobody here made, as held-out data sets: sampled General-MIDI instruments
# rendered with fluidsynth from Debian's two GM soundfonts (TimGM6mb: training, FluidR3: test),
# plus resample-shifted copies made with sox. Installs the Debian packages (apt-get update once,
# then only what is missing), then renders everything into data/recordings/ (git-ignored: no
# audio is committed). See Training/equivtrain/recordings.py for the split and the licences.
#   scripts/fetch-recordings.sh [--out data/recordings] [--seed 0] [--baseline]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(fluidsynth timgm6mb-soundfont fluid-soundfont-gm sox)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHONPATH=Training "${PYTHON:-.venv/bin/python}" -m equivtrain.recordings "$@"
