#!/usr/bin/env bash
# Prove that the on-device runtime (shadow_edge.runtime: numpy, onnxruntime, tokenizers; no torch) works on aarch64
# without ARM hardware: an arm64 Debian root filesystem run under qemu user emulation, the runtime's aarch64 wheels
# installed into it, the same test-split commands decoded there and on this x86 host (programs must be equal,
# confidences within a tolerance), and the runtime's torch-free pytest files run under emulation.
#
#   sudo nice -n 10 scripts/check_arm64.sh [MODEL_DIR] [--count N] [--tests "tests/a.py tests/b.py"]
#                                          [--tolerance T] [--out FILE]
#
# MODEL_DIR defaults to build/robot-dog (make it with `shadow-export --int8 -o build/robot-dog`). Needs root
# (debootstrap, chroot) and Debian's apt for debootstrap + qemu-user-static when they are missing.
# Cached between runs: the root filesystem (build/arm64-rootfs; delete it to rebuild) and the aarch64 wheels
# (build/arm64-wheels). The project's runtime source, the model and the tests are copied in fresh every run.
#
# How arm64 code runs: building the root filesystem needs the kernel's binfmt_misc to hand aarch64 ELF files to
# qemu (debootstrap's second stage runs the packages' scripts in a chroot); the script registers qemu-aarch64-static
# there (mounting binfmt_misc first if needed) when it is not registered yet. If that is impossible, it falls back to
# debootstrap's first stage plus unpacking the downloaded packages without running their scripts. The checks
# themselves never rely on binfmt_misc: they start the emulator explicitly inside the chroot,
# `chroot ROOTFS /usr/bin/qemu-aarch64-static /usr/bin/python3 ...`. QEMU_CPU (e.g. cortex-a57, cortex-a78ae)
# picks the emulated CPU; the default is qemu's `max`.
#
# Output: build/arm64-check.json (machine, wheel versions, programs equal, max confidence difference, tests
# passed/failed, wall time) and a summary; exit status 0 only when everything matched and the tests passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL_DIR="$ROOT/build/robot-dog"
COUNT=20
TOLERANCE=1e-3
OUT_JSON="$ROOT/build/arm64-check.json"
# The runtime's pytest files that import only numpy/onnxruntime/tokenizers/onnx/hypothesis/pytest (onnx builds the
# tests' tiny fake decoders; the runtime itself never imports it). Tests needing transformers skip themselves.
TEST_FILES="tests/runtime/test_actions.py tests/runtime/test_grammar.py tests/runtime/test_safety.py
tests/runtime/test_scoring.py tests/runtime/test_manifest.py tests/runtime/test_constrained.py tests/runtime/test_generate.py"
ROOTFS="${ARM64_ROOTFS:-$ROOT/build/arm64-rootfs}"
WHEELS="${ARM64_WHEELS:-$ROOT/build/arm64-wheels}"
SUITE="${ARM64_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
QEMU_BIN="${QEMU_AARCH64:-qemu-aarch64-static}"
GUEST=/opt/shadow-edge  # inside the root filesystem

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "check_arm64: error: $*" >&2; exit 2; }
log() { echo "check_arm64: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --count) COUNT="$2"; shift 2 ;;
    --tests) TEST_FILES="$2"; shift 2 ;;
    --tolerance) TOLERANCE="$2"; shift 2 ;;
    --out) OUT_JSON="$2"; shift 2 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) MODEL_DIR="$1"; shift ;;
  esac
done

START=$(date +%s)
PHASES="{"
phase_done() {  # name, start seconds
  PHASES="$PHASES\"$1\": $(( $(date +%s) - $2 )), "
}

MODEL_DIR="$(cd "$MODEL_DIR" 2>/dev/null && pwd)" || die "model directory ${MODEL_DIR} does not exist; make it with \`shadow-export --int8 -o build/robot-dog\` (or give another export directory)"
[ -f "$MODEL_DIR/manifest.json" ] || die "$MODEL_DIR has no manifest.json: not a shadow-export directory; run \`shadow-export --int8 -o $MODEL_DIR\` first"
[ "$(id -u)" = 0 ] || die "needs root (debootstrap and chroot); run it with sudo"
python3 -c 'import shadow_edge.runtime' 2>/dev/null \
  || die "the host python3 cannot import shadow_edge.runtime; install the project first (pip install -e '.[runtime]')"
for f in $TEST_FILES; do [ -f "$ROOT/$f" ] || die "no test file $f"; done

# --- 1. tools -----------------------------------------------------------------------------------------------------
t=$(date +%s)
if ! command -v debootstrap >/dev/null || ! command -v "$QEMU_BIN" >/dev/null; then
  log "installing debootstrap and qemu-user-static with apt-get"
  apt-get install -y -q debootstrap qemu-user-static >/dev/null || die "apt-get install debootstrap qemu-user-static failed"
fi
QEMU_PATH="$(command -v "$QEMU_BIN")"
CHROOT="$(command -v chroot)"  # by absolute path: in_arm64 runs it with a PATH meant for the guest
BINFMT=/proc/sys/fs/binfmt_misc

# Register qemu for aarch64 ELF files with binfmt_misc (flag F: the kernel opens the emulator now, so it also works
# inside a chroot). Returns non-zero when the kernel does not let us.
ensure_binfmt() {
  if [ -f "$BINFMT/qemu-aarch64" ] && head -1 "$BINFMT/qemu-aarch64" | grep -q enabled; then
    BINFMT_MODE="already registered"
    return 0
  fi
  if [ ! -e "$BINFMT/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || return 1
  fi
  local magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
  local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
  printf '%s' ":qemu-aarch64:M::$magic:$mask:$QEMU_PATH:F" >"$BINFMT/register" 2>/dev/null || return 1
  BINFMT_MODE="registered by this script"
}
phase_done tools "$t"

# --- 2. the arm64 root filesystem (cached) ------------------------------------------------------------------------
t=$(date +%s)
STAMP="$ROOTFS/.shadow-edge-rootfs"
if [ -f "$STAMP" ]; then
  log "reusing $ROOTFS ($(cat "$STAMP"))"
else
  PARTIAL="$ROOTFS.partial"
  rm -rf "$PARTIAL"
  if [ "${ARM64_NO_BINFMT:-0}" != 1 ] && ensure_binfmt; then
    log "binfmt_misc: qemu-aarch64 $BINFMT_MODE; debootstrap $SUITE arm64 (both stages) into $PARTIAL"
    debootstrap --arch=arm64 --variant=minbase --include=python3 "$SUITE" "$PARTIAL" "$MIRROR" >&2 \
      || die "debootstrap failed (log: $PARTIAL/debootstrap/debootstrap.log)"
    HOW="debootstrap, second stage under binfmt_misc + qemu"
  else
    BINFMT_MODE="unavailable"
    log "binfmt_misc unavailable: debootstrap --foreign, then unpacking the packages without their scripts"
    debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 "$SUITE" "$PARTIAL" "$MIRROR" >&2 \
      || die "debootstrap --foreign failed"
    for deb in "$PARTIAL"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$PARTIAL"; done
    cp "$QEMU_PATH" "$PARTIAL/usr/bin/qemu-aarch64-static"
    chroot "$PARTIAL" /usr/bin/qemu-aarch64-static /sbin/ldconfig || die "ldconfig under qemu failed"
    HOW="debootstrap --foreign + dpkg-deb -x (no binfmt_misc)"
  fi
  mv "$PARTIAL" "$ROOTFS"
  echo "$SUITE arm64 minbase + python3, $HOW, $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$STAMP"
fi
cp "$QEMU_PATH" "$ROOTFS/usr/bin/qemu-aarch64-static"
in_arm64() {  # run an aarch64 program of the root filesystem under qemu (explicitly), with a clean environment
  env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 PYTHONPATH="$GUEST/src" \
    PYTHONDONTWRITEBYTECODE=1 ${QEMU_CPU:+QEMU_CPU=$QEMU_CPU} \
    "$CHROOT" "$ROOTFS" /usr/bin/qemu-aarch64-static "$@"
}
GUEST_PY="$(cd "$ROOTFS/usr/bin" && ls python3.[0-9]* | grep -E '^python3\.[0-9]+$' | sort -V | tail -1)" \
  || die "no python3 in $ROOTFS"
PYVER="${GUEST_PY#python}"
GLIBC_MINOR="$(sed -n '/^Package: libc6$/,/^$/s/^Version: 2\.\([0-9]*\).*/\1/p' "$ROOTFS/var/lib/dpkg/status")"
[ -n "$GLIBC_MINOR" ] || die "cannot read the glibc version of $ROOTFS"
phase_done rootfs "$t"

# --- 3. the runtime's aarch64 wheels (the host's versions, so both sides run the same code) -----------------------
t=$(date +%s)
read -r -a REQUIREMENTS <<<"$(python3 - <<'EOF'
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in ("numpy", "onnxruntime", "tokenizers")))
EOF
)"
TEST_REQUIREMENTS=(pytest hypothesis)
if grep -qE '^ *(import onnx|from onnx)' $(for f in $TEST_FILES tests/runtime_fakes.py; do echo "$ROOT/$f"; done); then
  TEST_REQUIREMENTS+=("onnx==$(python3 -c 'from importlib.metadata import version; print(version("onnx"))')")
fi
PLATFORMS=(--platform manylinux2014_aarch64)
for ((minor = 17; minor <= GLIBC_MINOR; minor++)); do PLATFORMS+=(--platform "manylinux_2_${minor}_aarch64"); done
PIP_TARGET_ARGS=(--only-binary=:all: "${PLATFORMS[@]}" --python-version "$PYVER" --implementation cp)
mkdir -p "$WHEELS"
SITE="$ROOTFS/usr/local/lib/$GUEST_PY/dist-packages"
WANT="${REQUIREMENTS[*]} ${TEST_REQUIREMENTS[*]}"
if [ "$(cat "$SITE/.shadow-edge-wheels" 2>/dev/null)" != "$WANT" ]; then
  log "pip download (aarch64, cp${PYVER/./}, glibc 2.$GLIBC_MINOR): $WANT"
  python3 -m pip download -q "${PIP_TARGET_ARGS[@]}" -d "$WHEELS" "${REQUIREMENTS[@]}" "${TEST_REQUIREMENTS[@]}" \
    || die "no aarch64 wheels for: $WANT (see pip's message above)"
  rm -rf "$SITE"
  python3 -m pip install -q --no-index --find-links "$WHEELS" "${PIP_TARGET_ARGS[@]}" --target "$SITE" \
    "${REQUIREMENTS[@]}" "${TEST_REQUIREMENTS[@]}" || die "installing the aarch64 wheels into $SITE failed"
  echo "$WANT" >"$SITE/.shadow-edge-wheels"
fi
phase_done wheels "$t"

# --- 4. the project's runtime source, the model, the tests: fresh copies --------------------------------------------
t=$(date +%s)
rm -rf "${ROOTFS:?}$GUEST"
mkdir -p "$ROOTFS$GUEST"/{src/shadow_edge,scripts,data,out,tests,tasks/robot_dog,docs}
cp "$ROOT/shadow_edge/__init__.py" "$ROOTFS$GUEST/src/shadow_edge/"
(cd "$ROOT" && tar --exclude=__pycache__ -cf - runtime) | tar -xf - -C "$ROOTFS$GUEST/src/shadow_edge"
cp -r "$MODEL_DIR" "$ROOTFS$GUEST/model"
cp "$ROOT/scripts/arm64_runtime_check.py" "$ROOTFS$GUEST/scripts/"
cp "$ROOT/tasks/robot_dog/data/test.jsonl" "$ROOTFS$GUEST/data/"
cp -r "$ROOT/tasks/robot_dog/data" "$ROOTFS$GUEST/tasks/robot_dog/"  # the tests' tiny tokenizers are trained on it
cp -r "$ROOT/docs/spec" "$ROOTFS$GUEST/docs/"  # the contract copy test_actions compares the packaged one with
cp "$ROOT/pyproject.toml" "$ROOTFS$GUEST/"  # pytest's configuration (markers, `-m 'not slow'`)
cp "$ROOT/tests/conftest.py" "$ROOT/tests/runtime_fakes.py" "$ROOT/tests/tiny_onnx_decoder.py" "$ROOTFS$GUEST/tests/"
for f in $TEST_FILES; do mkdir -p "$ROOTFS$GUEST/$(dirname "$f")" && cp "$ROOT/$f" "$ROOTFS$GUEST/$f"; done
phase_done install "$t"

# --- 5a. the same commands on x86 and on arm64 ----------------------------------------------------------------------
t=$(date +%s)
WORK="$ROOT/build/arm64-check"
mkdir -p "$WORK"
log "x86_64: $COUNT test-split commands through Commander"
python3 "$ROOT/scripts/arm64_runtime_check.py" run "$MODEL_DIR" --commands "$ROOT/tasks/robot_dog/data/test.jsonl" \
  --count "$COUNT" --out "$WORK/x86_64.json" || die "the x86 run failed"
phase_done commands_x86 "$t"
t=$(date +%s)
log "aarch64 under qemu: the same commands"
in_arm64 "/usr/bin/$GUEST_PY" "$GUEST/scripts/arm64_runtime_check.py" run "$GUEST/model" \
  --commands "$GUEST/data/test.jsonl" --count "$COUNT" --out "$GUEST/out/aarch64.json" || die "the arm64 run failed"
cp "$ROOTFS$GUEST/out/aarch64.json" "$WORK/aarch64.json"
phase_done commands_arm64 "$t"

# --- 5b. the runtime's torch-free tests under qemu ----------------------------------------------------------------
t=$(date +%s)
GUEST_TESTS=""
for f in $TEST_FILES; do GUEST_TESTS="$GUEST_TESTS, '$f'"; done
log "aarch64 under qemu: pytest $(echo $TEST_FILES)"
# Python itself changes directory: a shell in the chroot would exec python3 through binfmt_misc, not qemu.
in_arm64 "/usr/bin/$GUEST_PY" -c "import os, sys, pytest; os.chdir('$GUEST'); \
sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '--junitxml=$GUEST/out/pytest.xml'$GUEST_TESTS]))" \
  >"$WORK/pytest.log" 2>&1 || log "pytest under qemu reported failures (log: $WORK/pytest.log)"
tail -3 "$WORK/pytest.log" >&2
[ -f "$ROOTFS$GUEST/out/pytest.xml" ] || die "pytest under qemu wrote no result (log: $WORK/pytest.log)"
cp "$ROOTFS$GUEST/out/pytest.xml" "$WORK/pytest.xml"
phase_done pytest_arm64 "$t"

# --- 6. verdict --------------------------------------------------------------------------------------------------
PHASES="${PHASES%, }}"
python3 "$ROOT/scripts/arm64_runtime_check.py" compare --x86 "$WORK/x86_64.json" --arm64 "$WORK/aarch64.json" \
  --junit "$WORK/pytest.xml" --test-files "$(echo $TEST_FILES)" --tolerance "$TOLERANCE" \
  --model-dir "$MODEL_DIR" --emulator "$("$QEMU_PATH" --version | head -1), cpu ${QEMU_CPU:-max}" \
  --wall-s "$(( $(date +%s) - START ))" --phases "$PHASES" --out "$OUT_JSON"
