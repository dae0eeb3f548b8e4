#!/usr/bin/env bash
# The arm64 proof: the box's software on the Pi's architecture, installed the installer's way.
#
#   sudo tools/arm64_check.sh [WORKDIR]        (default /var/tmp/parallax-arm64; reuses a finished root)
#   FRESH=1 sudo tools/arm64_check.sh          rebuild the root from scratch
#   ARCH=amd64 sudo tools/arm64_check.sh       the same in a native Debian 12 root (the installer's check)
#   QEMU_CPU=cortex-a76 sudo tools/arm64_check.sh   emulate a Pi 5's core (default: a Pi 4B's cortex-a72)
#
# 1. a Debian 12 (bookworm) minbase root for ARCH with debootstrap, from the mirror this machine's apt
#    uses; arm64 runs under qemu-user-static through binfmt_misc (mounted and enabled here if needed);
# 2. tools/install.sh --root into it: apt packages, the parallax user, /opt/parallax/.venv with the
#    aarch64 wheels (tflite-runtime, sherpa-onnx, numpy, soxr, lgpio; pyalsaaudio built from source),
#    config, state, the models copied into the store and verified, units enabled;
# 3. inside the root: import every firmware module, load every model, `parallax intent`, replay a short
#    call (the first 20 s of a dev-corpus call when ../shared is there, else a rendered tone), and check
#    `systemctl is-enabled`.
# Not part of CI: under emulation it takes tens of minutes, and its timings say nothing about a Pi.
# Prints a table of stages and, last, one JSON line. Exit 0 when every stage passed.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
ARCH="${ARCH:-arm64}"
WORK="${1:-/var/tmp/parallax-$ARCH}"
ROOTFS="$WORK/root"
LOG="$WORK/check.log"
[ "$(id -u)" -eq 0 ] || { echo "arm64_check.sh: run as root (debootstrap, chroot, mounts)" >&2; exit 2; }
mkdir -p "$WORK"
: > "$LOG"

declare -a STAGES=()
T0=$(date +%s)
stage() {  # stage NAME COMMAND...: run, time, record; the first failure ends the check
  local name=$1; shift
  local t=$(date +%s) rc=0
  echo "==> $name" | tee -a "$LOG"
  "$@" >> "$LOG" 2>&1 || rc=$?
  local dt=$(( $(date +%s) - t ))
  STAGES+=("$name|$rc|$dt")
  if [ "$rc" -ne 0 ]; then
    echo "    FAILED ($rc) after ${dt}s; the log's end:" ; tail -n 25 "$LOG" | sed 's/^/    /'
    report 1
  fi
  echo "    ok (${dt}s)"
}

report() {
  local total=$(( $(date +%s) - T0 )) ok=$1 json="" row name rc dt
  printf '\n%-28s %6s %8s\n' STAGE RESULT SECONDS
  for row in "${STAGES[@]}"; do
    IFS='|' read -r name rc dt <<< "$row"
    printf '%-28s %6s %8s\n' "$name" "$([ "$rc" -eq 0 ] && echo ok || echo FAIL)" "$dt"
    json+="\"${name// /_}_s\": $dt, "
  done
  printf '%-28s %6s %8s\n' total "$([ "$ok" -eq 0 ] && echo ok || echo FAIL)" "$total"
  echo "log: $LOG"
  echo "{\"arch\": \"$ARCH\", \"passed\": $([ "$ok" -eq 0 ] && echo true || echo false), ${json}\"total_s\": $total}"
  exit "$ok"
}

mirror() {  # the Debian mirror this machine's apt uses (deb822 or one-line sources)
  local uri
  uri="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null \
    | grep -v security | head -n 1 | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//; s/[[:space:]].*$//')"
  echo "${uri:-http://deb.debian.org/debian}"
}

enable_emulation() {
  [ "$ARCH" != "$(dpkg --print-architecture)" ] || return 0
  command -v qemu-aarch64-static >/dev/null || { echo "apt-get install qemu-user-static binfmt-support"; apt-get install -y -qq qemu-user-static binfmt-support; }
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
  grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64
}

make_root() {
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
  if [ -n "${FRESH:-}" ]; then rm -rf "$ROOTFS"; fi
  if [ -x "$ROOTFS/usr/bin/apt-get" ] && [ -f "$ROOTFS/var/lib/dpkg/status" ] && [ ! -d "$ROOTFS/debootstrap" ]; then
    echo "reusing $ROOTFS"; return 0
  fi
  rm -rf "$ROOTFS"
  debootstrap --arch="$ARCH" --variant=minbase bookworm "$ROOTFS" "$(mirror)"
}

MOUNTED=()
mount_api() {
  # Pi OS has a boot config the installer appends to; a Debian root gets a stand-in so that step runs too
  mkdir -p "$ROOTFS/boot/firmware"
  [ -f "$ROOTFS/boot/firmware/config.txt" ] || printf '# stand-in for Raspberry Pi OS boot config
[all]
' > "$ROOTFS/boot/firmware/config.txt"
  local m
  for m in proc sys dev dev/pts; do
    mountpoint -q "$ROOTFS/$m" && continue
    mkdir -p "$ROOTFS/$m"
    case $m in
      proc) mount -t proc proc "$ROOTFS/proc" ;;
      *) mount --bind "/$m" "$ROOTFS/$m" ;;
    esac
    MOUNTED=("$ROOTFS/$m" "${MOUNTED[@]}")
  done
  cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
  if [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
    # qemu-user (7.2) shows emulated programs the host's x86 /proc/cpuinfo; onnxruntime's cpuinfo
    # library finds no ARM processor in it and libonnxruntime.so segfaults while loading (sherpa-onnx
    # links it). An aarch64 cpuinfo (Cortex-A72, one entry per host CPU, as /sys says) fixes the
    # emulation only; on a Pi the kernel's own file is right. Cf. microsoft/onnxruntime#10038.
    local n i fake="$WORK/cpuinfo-aarch64"
    n="$(nproc --all)"
    : > "$fake"
    for ((i = 0; i < n; i++)); do
      printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i" >> "$fake"
    done
    printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B (emulated)\n' >> "$fake"
    mount --bind "$fake" "$ROOTFS/proc/cpuinfo"
    MOUNTED=("$ROOTFS/proc/cpuinfo" "${MOUNTED[@]}")
  fi
}
unmount_api() { local m; for m in "${MOUNTED[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap unmount_api EXIT

host_cas() {
  # A build machine behind a TLS-inspecting proxy trusts extra CAs (/usr/local/share/ca-certificates);
  # the root's pip must trust them too to reach PyPI. Nothing of the kind is needed on a Pi.
  local crts=(/usr/local/share/ca-certificates/*.crt)
  [ -e "${crts[0]}" ] || { echo "no local CAs on this machine"; return 0; }
  local crt fresh=0
  mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
  for crt in "${crts[@]}"; do
    cmp -s "$crt" "$ROOTFS/usr/local/share/ca-certificates/$(basename "$crt")" && continue
    cp "$crt" "$ROOTFS/usr/local/share/ca-certificates/"
    fresh=1
  done
  [ "$fresh" -eq 1 ] || { echo "already trusted"; return 0; }
  if [ -x "$ROOTFS/usr/sbin/update-ca-certificates" ]; then
    in_root update-ca-certificates  # else ca-certificates' own install runs it (tools/install.sh)
  fi
}

# The emulated core: a Pi 4B's Cortex-A72 by default (QEMU_CPU=cortex-a76 for a Pi 5's). qemu's default
# "max" core advertises extensions no Pi has (SVE, i8mm, ...): onnxruntime then picks kernels that
# qemu 7.2 gets wrong, and Whisper's transcripts come out as noise ("be tri,,,arrarr") while the same
# audio transcribes correctly on an emulated A72 or A76.
export QEMU_CPU="${QEMU_CPU:-cortex-a72}"
in_root() { chroot "$ROOTFS" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" "$@"; }

check_imports() {
  in_root /opt/parallax/.venv/bin/python - <<'EOF'
import importlib, pkgutil, platform, sys
import firmware
names = [m.name for m in pkgutil.walk_packages(firmware.__path__, "firmware.") if not m.name.endswith("__main__")]
failed = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:  # report every failure, not the first
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print(f"{platform.machine()} Python {sys.version.split()[0]}: imported {len(names) - len(failed)}/{len(names)} modules")
for line in failed:
    print("  FAILED", line)
import numpy, sherpa_onnx, alsaaudio, soxr, gpiozero, lgpio
from tflite_runtime.interpreter import Interpreter
from importlib.metadata import version
for dist in ("numpy", "tflite-runtime", "sherpa-onnx", "pyalsaaudio", "soxr", "lgpio", "gpiozero", "bleak", "paho-mqtt"):
    print(f"  {dist} {version(dist)}")
sys.exit(1 if failed else 0)
EOF
}

load_models() {
  in_root /opt/parallax/.venv/bin/python - <<'EOF'
import time
from pathlib import Path
from firmware.config import load_config
from firmware.runtime import load_engines
config = load_config(Path("/etc/parallax/parallax.toml"))
t = time.monotonic()
engines = load_engines(config)  # verifies each manifest's hashes, loads VAD, Whisper, the intent model
vad = engines.vad_factory()
print(f"loaded VAD, recognizer and intent model in {time.monotonic() - t:.1f} s (emulated)")
print(engines.intent.classify("that's way more than we budgeted", "buyer")[:2])
EOF
}

short_call() {
  local wav="$ROOTFS/tmp/short_call.wav"
  /usr/bin/python3 - "$wav" <<'EOF'
import glob, sys, wave, math, struct
out = sys.argv[1]
calls = sorted(glob.glob("/work/shared/corpus/dev/calls/*.wav"))
if calls:
    with wave.open(calls[0]) as w:
        params, frames = w.getparams(), w.readframes(20 * w.getframerate())
    print(f"first 20 s of {calls[0]}")
else:  # no corpus: a rendered two-channel tone still runs every stage of the pipeline
    rate = 16000
    params = (2, 2, rate, 0, "NONE", "not compressed")
    frames = b"".join(struct.pack("<hh", int(8000 * math.sin(2 * math.pi * 220 * i / rate)), 0) for i in range(10 * rate))
    print("no dev corpus: 10 s of tone")
with wave.open(out, "wb") as w:
    w.setparams(params)
    w.writeframes(frames)
EOF
  in_root /opt/parallax/.venv/bin/parallax --config /etc/parallax/parallax.toml replay /tmp/short_call.wav --json /tmp/short_call.jsonl \
    || return 1
  # The same clip through the same models on the build machine, when it has the firmware's venv:
  # emulation must change nothing but the speed (an emulation fault shows up as noise, not an error).
  local host_py="${HOST_PYTHON:-$SRC/.venv/bin/python}"
  rm -f "$WORK/host_short_call.jsonl"
  if [ -x "$host_py" ]; then
    (cd "$SRC" && "$host_py" -m firmware replay "$ROOTFS/tmp/short_call.wav" --json "$WORK/host_short_call.jsonl" >/dev/null) || return 1
  fi
  /usr/bin/python3 - "$ROOTFS/tmp/short_call.jsonl" "$WORK/host_short_call.jsonl" <<'EOF'
import collections, difflib, glob, json, os, re, sys
events = [json.loads(line) for line in open(sys.argv[1])]
kinds = collections.Counter(e["type"] for e in events)
print(dict(kinds))
assert kinds["summary"] == 1, "the replay ended without a summary"
heard = [e["text"] for e in events if e["type"] == "utterance"]
if os.path.exists(sys.argv[2]):
    host = [json.loads(line)["text"] for line in open(sys.argv[2]) if json.loads(line)["type"] == "utterance"]
    ratio = difflib.SequenceMatcher(None, " | ".join(heard), " | ".join(host)).ratio()
    print(f"aarch64 transcripts vs the build machine's: {'identical' if heard == host else f'similarity {ratio:.3f}'}")
    assert ratio >= 0.9, "the emulated box heard something else than the build machine"
truths = sorted(glob.glob("/work/shared/corpus/dev/calls/*.json"))
if truths:  # and against what was said (the buyer is phone-band: tiny.en misses about half of it anywhere)
    words = lambda text: set(re.findall(r"[a-z']{3,}", text.lower()))
    said = set().union(*(words(u["text"]) for u in json.load(open(truths[0]))["utterances"] if u["start"] < 20))
    found = words(" ".join(heard)) & said
    print(f"{len(found)}/{len(said)} of the words said in the first 20 s were transcribed ({100 * len(found) / max(1, len(said)):.0f} %)")
    assert len(found) >= 0.3 * len(said), "the transcripts do not match the call"
EOF
}

doctor_runs() {
  # no gadget, headset or GPIO in a chroot: the doctor must say so (exit 1) in valid JSON, not crash
  local rc=0
  in_root /opt/parallax/.venv/bin/parallax doctor --json > "$WORK/doctor.json" || rc=$?
  cat "$WORK/doctor.json"
  [ "$rc" -eq 1 ] && /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print({c["name"]: c["status"] for c in d["checks"]})' "$WORK/doctor.json"
}

enabled() {
  # a minbase root has no systemd; the host's systemctl reads the root's unit links (as at boot)
  systemctl --root="$ROOTFS" is-enabled parallax-gadget.service parallax-bridge.service parallax-coach.service \
    && in_root id parallax
}

echo "arm64 check: $ARCH root in $ROOTFS (emulated core: $QEMU_CPU), from $SRC; log $LOG"
stage "emulation" enable_emulation
stage "debootstrap" make_root
stage "mounts" mount_api
stage "host CAs" host_cas
stage "install" "$SRC/tools/install.sh" --root "$ROOTFS"
stage "reinstall idempotent" "$SRC/tools/install.sh" --root "$ROOTFS"
stage "import every module" check_imports
stage "load every model" load_models
stage "parallax intent" in_root /opt/parallax/.venv/bin/parallax --config /etc/parallax/parallax.toml intent "that's more than we budgeted"
stage "replay a short call" short_call
stage "parallax doctor" doctor_runs
stage "units enabled" enabled
report 0
