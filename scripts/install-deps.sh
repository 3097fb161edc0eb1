#!/usr/bin/env bash
# Installs what equivd needs to build, run and test on Debian 12: the C libraries it wraps, the
# tools the tests drive, and the Python packages of the reference checks. Idempotent and quiet:
# it only calls apt-get or pip when something is missing.
set -euo pipefail

APT_PACKAGES=(
    pkg-config
    libasound2-dev      # CALSA: capture
    libsndfile1-dev     # CSndFile: file replay (WAV, FLAC, OGG)
    libsamplerate0-dev  # CSampleRate: rate conversion
    libfftw3-dev        # CFFTW: STFT (fftw3f)
    libopenblas-dev     # CBLAS: the model runtime
    alsa-utils          # arecord, for checking capture configurations by hand
    sox                 # makes the bundled samples and benchmark audio
    valgrind            # the benchmark's allocation check (callgrind)
)
PYTHON_PACKAGES=(numpy scipy pytest)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
apt_install "${APT_PACKAGES[@]}"

PYTHON=${PYTHON:-python3}
pymissing=()
for p in "${PYTHON_PACKAGES[@]}"; do
    "$PYTHON" -c "import $p" 2>/dev/null || pymissing+=("$p")
done
if ((${#pymissing[@]})); then
    echo "installing Python packages for $PYTHON: ${pymissing[*]}"
    # Debian's own python3 refuses pip (PEP 668): take Debian's builds of the same packages.
    "$PYTHON" -m pip install -q "${pymissing[@]}" 2>/dev/null || apt_install "${pymissing[@]/#/python3-}"
fi
