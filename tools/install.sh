#!/usr/bin/env bash
# Install Parallax Edge on Raspberry Pi OS Bookworm (64-bit), Pi 4B or Pi 5. One command:
#
#   sudo ./tools/install.sh                 install or upgrade (idempotent: a rerun changes nothing new)
#   sudo ./tools/install.sh --uninstall     remove the firmware, units and board files; keeps the rep's
#                                           data (/var/lib/parallax) and /etc/parallax
#   sudo ./tools/install.sh --uninstall --purge   ... and those too, and the parallax user
#
# What it lays down (all under --root DIR, default /):
#   parallax system user (groups audio, gpio, bluetooth); /opt/parallax/src (this checkout's tracked
#   files) and /opt/parallax/.venv (the firmware on the system's python3, 3.11 on Bookworm);
#   /etc/parallax/parallax.toml (written once, kept on upgrade); /var/lib/parallax (state, models);
#   board/: boot fragment into /boot/firmware/config.txt, gadget script, asound.conf, udev, sysctl,
#   tmpfiles; systemd/: the units, enabled.
#
# --root DIR installs into another root (a Debian 12 root made by debootstrap, an image): files are
# written under DIR, and what must run on the target (apt-get, python3 -m venv, pip, parallax) runs in
# `chroot DIR`. --skip-apt / --skip-venv leave out those steps (a test's fake root has no python3).
# Exit status: 0 done, 1 a step failed (its message says which), 2 bad usage.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
ROOT=/
MODE=install
PURGE=0
SKIP_APT=0
SKIP_VENV=0
MODELS_FROM="$SRC/models"

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --uninstall) MODE=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    --skip-apt) SKIP_APT=1; shift ;;
    --skip-venv) SKIP_VENV=1; shift ;;
    --models-from) MODELS_FROM="${2:?--models-from needs a directory}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$PURGE" -eq 0 ] || [ "$MODE" = uninstall ] || { echo "install.sh: --purge goes with --uninstall" >&2; exit 2; }
[ -d "$ROOT" ] || { echo "install.sh: --root $ROOT is not a directory" >&2; exit 2; }
ROOT="$(cd "$ROOT" && pwd)"
[ "$(id -u)" -eq 0 ] || die "run as root (sudo): it creates a system user and writes /etc, /opt, /var"
R="${ROOT%/}"   # prefix for paths: "" for the live system

OPT=/opt/parallax
VENV=$OPT/.venv
STATE=/var/lib/parallax
ETC=/etc/parallax
UNITS=(parallax-gadget.service parallax-bridge.service parallax-coach.service parallax-agent.service)
BOOT_MARK_BEGIN="# >>> parallax-edge (tools/install.sh) >>>"
BOOT_MARK_END="# <<< parallax-edge <<<"
APT_PACKAGES=(python3 python3-venv python3-dev gcc libasound2-dev alsa-utils libasound2-plugins bluez ca-certificates kmod)

in_target() {  # run a command on the target system
  if [ -z "$R" ]; then "$@"; else chroot "$ROOT" "$@"; fi
}

systemctl_target() {
  if [ -z "$R" ]; then systemctl "$@"; else systemctl --root="$ROOT" "$@"; fi
}

id_of() {  # numeric id of a user or group *in the target's* files (the host may not know them)
  local db=$1 name=$2
  awk -F: -v n="$name" '$1 == n { print $3; found=1 } END { exit !found }' "$R/etc/$db"
}

put() {  # install FILE into the target with MODE; prints nothing when already identical
  local mode=$1 src=$2 dst=$3
  if ! cmp -s "$src" "$R$dst"; then
    install -D -m "$mode" "$src" "$R$dst"
    echo "    $dst"
    CHANGED=1
  fi
}

REBOOT_NEEDED=0
CHANGED=0

install_packages() {
  [ "$SKIP_APT" -eq 0 ] || { say "apt: skipped (--skip-apt)"; return; }
  local need=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    in_target dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done
  if [ ${#need[@]} -eq 0 ]; then say "apt: up to date"; return; fi
  say "apt: installing ${need[*]}"
  in_target apt-get update -qq || die "apt-get update failed (network? /etc/apt/sources.list?)"
  DEBIAN_FRONTEND=noninteractive in_target apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || die "apt-get install ${need[*]} failed"
}

create_user() {
  local g
  for g in audio gpio bluetooth; do
    # Pi OS has all three; plain Debian lacks gpio (and bluetooth until bluez is installed)
    id_of group "$g" >/dev/null || groupadd --root "$ROOT" --system "$g"
  done
  if id_of passwd parallax >/dev/null; then
    usermod --root "$ROOT" --append --groups audio,gpio,bluetooth parallax
    say "user parallax: present (groups audio, gpio, bluetooth)"
  else
    useradd --root "$ROOT" --system --user-group --home-dir "$STATE" --no-create-home \
      --shell /usr/sbin/nologin --groups audio,gpio,bluetooth parallax 2>&1 | grep -v "missing or non-executable shell" || true
    id_of passwd parallax >/dev/null || die "could not create the parallax user"
    say "user parallax: created (groups audio, gpio, bluetooth)"
  fi
}

copy_source() {
  say "firmware: $OPT/src"
  local list
  list="$(mktemp)"
  if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$SRC" ls-files -z > "$list"
  else
    (cd "$SRC" && find . -path ./.venv -prune -o -path ./models -prune -o -name __pycache__ -prune -o -type f -print0) > "$list"
  fi
  # the source is replaced whole on upgrade: nothing of the rep's lives in it
  rm -rf "$R$OPT/src.new"
  mkdir -p "$R$OPT/src.new"
  (cd "$SRC" && tar --null -T "$list" -cf - ) | tar -C "$R$OPT/src.new" -xf -
  rm -f "$list"
  rm -rf "$R$OPT/src"
  mv "$R$OPT/src.new" "$R$OPT/src"
}

install_venv() {
  [ "$SKIP_VENV" -eq 0 ] || { say "venv: skipped (--skip-venv)"; return; }
  local py
  py="$(in_target python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || die "no python3 on the target"
  case "$py" in
    3.11|3.12) ;;
    *) die "python3 is $py: the firmware runs on 3.11 (Bookworm) or 3.12 (README, Pythons)" ;;
  esac
  if [ ! -x "$R$VENV/bin/python" ]; then
    say "venv: creating $VENV on Python $py"
    in_target python3 -m venv "$VENV" || die "python3 -m venv failed (is python3-venv installed?)"
  fi
  local stamp
  # reinstall only when the source changed: a digest of every file's digest, in a stable order
  stamp="$VENV/.installed-$(cd "$R$OPT/src" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
  if [ -f "$R$stamp" ]; then say "venv: firmware up to date"; return; fi
  say "venv: installing the firmware and its wheels (pip; pyalsaaudio builds from source)"
  in_target "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  in_target "$VENV/bin/python" -m pip install -q "$OPT/src" > "$R$OPT/pip.log" 2>&1 \
    || { tail -n 30 "$R$OPT/pip.log" >&2; die "pip install failed (full log: $OPT/pip.log)"; }
  rm -f "$R$VENV"/.installed-*
  touch "$R$stamp"
  ln -sf "$VENV/bin/parallax" "$R/usr/bin/parallax"
}

write_config() {
  mkdir -p "$R$ETC"
  if [ -e "$R$ETC/parallax.toml" ]; then
    say "config: $ETC/parallax.toml kept"
    return
  fi
  install -m 644 "$SRC/board/parallax.toml" "$R$ETC/parallax.toml.tmp"
  chmod 644 "$R$ETC/parallax.toml.tmp"
  mv "$R$ETC/parallax.toml.tmp" "$R$ETC/parallax.toml"
  say "config: $ETC/parallax.toml written"
}

make_state() {
  local uid gid
  uid="$(id_of passwd parallax)"; gid="$(id_of group parallax)"
  mkdir -p "$R$STATE/models"
  chown "$uid:$gid" "$R$STATE" "$R$STATE/models"
  chmod 750 "$R$STATE"
}

provision_models() {
  # The checkout's model store (models/<name>/<version>/ + current; built there by `parallax models
  # build`, as tools/bootstrap does) into the device's store. A version already on the box is never
  # rewritten, and `current` is set only where the box has none: on upgrade the fleet's choice stands
  # (a newer version from the checkout is staged, for `parallax models activate`).
  local src="$MODELS_FROM" uid gid name ver dst
  [ -d "$src" ] || die "no models at $src (--models-from DIR)"
  uid="$(id_of passwd parallax)"; gid="$(id_of group parallax)"
  for name in whisper-tiny.en silero-vad intent playbook; do
    [ -L "$src/$name/current" ] || die "model $name has no current version in $src: run 'parallax models build' there first"
  done
  say "models: provisioning into $STATE/models"
  for name in "$src"/*/; do
    name="$(basename "$name")"
    [ -L "$src/$name/current" ] || continue
    ver="$(readlink "$src/$name/current")"
    dst="$R$STATE/models/$name"
    mkdir -p "$dst"
    if [ ! -d "$dst/$ver" ]; then
      rm -rf "$dst/.$ver.installing"
      cp -R --preserve=mode,timestamps "$src/$name/$ver" "$dst/.$ver.installing"
      mv "$dst/.$ver.installing" "$dst/$ver"
      echo "    $name $ver"
    fi
    if [ ! -L "$dst/current" ]; then
      ln -sfn "$ver" "$dst/.current.installing"
      mv -T "$dst/.current.installing" "$dst/current"
    fi
  done
  chown -R "$uid:$gid" "$R$STATE/models"
  if [ "$SKIP_VENV" -eq 0 ]; then
    in_target runuser -u parallax -- "$VENV/bin/parallax" --config "$ETC/parallax.toml" models verify >/dev/null \
      || die "the provisioned models failed verification ($VENV/bin/parallax models verify)"
    say "models: verified"
  fi
}

install_board() {
  say "board and units"
  put 755 "$SRC/board/gadget/parallax-gadget.sh" /usr/lib/parallax/parallax-gadget.sh
  put 644 "$SRC/board/asound.conf" /etc/asound.conf
  put 644 "$SRC/board/udev/90-parallax-headset.rules" /etc/udev/rules.d/90-parallax-headset.rules
  put 644 "$SRC/board/sysctl.d/90-parallax.conf" /etc/sysctl.d/90-parallax.conf
  put 644 "$SRC/board/tmpfiles.d/parallax.conf" /etc/tmpfiles.d/parallax.conf
  local unit
  for unit in "${UNITS[@]}"; do
    put 644 "$SRC/systemd/$unit" "/etc/systemd/system/$unit"
  done
  boot_config
}

boot_config() {
  local cfg="$R/boot/firmware/config.txt"
  if [ ! -f "$cfg" ]; then
    echo "    /boot/firmware/config.txt not found (not a Raspberry Pi?): add board/config.txt.fragment to the boot config by hand"
    return
  fi
  if grep -qF "$BOOT_MARK_BEGIN" "$cfg"; then
    echo "    /boot/firmware/config.txt: USB-C device mode already set"
    return
  fi
  { echo; echo "$BOOT_MARK_BEGIN"; cat "$SRC/board/config.txt.fragment"; echo "$BOOT_MARK_END"; } >> "$cfg"
  echo "    /boot/firmware/config.txt: USB-C port set to device mode (dtoverlay=dwc2,dr_mode=peripheral)"
  REBOOT_NEEDED=1
}

enable_units() {
  if [ -z "$R" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
  fi
  local enable=(parallax-gadget.service parallax-bridge.service parallax-coach.service)
  if [ "$SKIP_VENV" -eq 0 ] && in_target "$VENV/bin/parallax" agent --help >/dev/null 2>&1; then
    enable+=(parallax-agent.service)
  elif [ "$SKIP_VENV" -eq 1 ]; then
    echo "    parallax-agent.service installed, not enabled (--skip-venv: cannot check for 'parallax agent')"
  else
    echo "    parallax-agent.service installed but not enabled: this firmware has no 'parallax agent' yet"
  fi
  systemctl_target enable "${enable[@]}" >/dev/null 2>&1 || die "systemctl enable ${enable[*]} failed"
  say "units enabled: ${enable[*]}"
  if [ -z "$R" ] && [ -d /run/systemd/system ] && [ "$REBOOT_NEEDED" -eq 0 ]; then
    systemctl restart "${enable[@]}" || echo "    a unit failed to start: run 'parallax doctor'"
  fi
}

uninstall() {
  say "uninstalling from $ROOT"
  local unit
  if [ -z "$R" ] && [ -d /run/systemd/system ]; then
    systemctl stop "${UNITS[@]}" 2>/dev/null || true
  fi
  systemctl_target disable "${UNITS[@]}" >/dev/null 2>&1 || true
  for unit in "${UNITS[@]}"; do rm -f "$R/etc/systemd/system/$unit"; done
  rm -f "$R/usr/lib/parallax/parallax-gadget.sh" "$R/etc/asound.conf" "$R/etc/udev/rules.d/90-parallax-headset.rules" \
    "$R/etc/sysctl.d/90-parallax.conf" "$R/etc/tmpfiles.d/parallax.conf"
  rmdir "$R/usr/lib/parallax" 2>/dev/null || true
  if [ -L "$R/usr/bin/parallax" ]; then rm -f "$R/usr/bin/parallax"; fi
  rm -rf "$R$OPT"
  local cfg="$R/boot/firmware/config.txt"
  if [ -f "$cfg" ] && grep -qF "$BOOT_MARK_BEGIN" "$cfg"; then
    # drop our block and the blank line before it, written atomically next to the original
    awk -v b="$BOOT_MARK_BEGIN" -v e="$BOOT_MARK_END" '
      $0 == b { skip = 1; if (held) held = 0; next }
      skip && $0 == e { skip = 0; next }
      skip { next }
      { if (held) print ""; held = ($0 == ""); if (!held) print }
      END { if (held) print "" }' "$cfg" > "$cfg.parallax-tmp"
    mv "$cfg.parallax-tmp" "$cfg"
    REBOOT_NEEDED=1
  fi
  if [ "$PURGE" -eq 1 ]; then
    rm -rf "$R$STATE" "$R$ETC"
    if id_of passwd parallax >/dev/null; then userdel --root "$ROOT" parallax 2>/dev/null || true; fi
    if id_of group parallax >/dev/null; then groupdel --root "$ROOT" parallax 2>/dev/null || true; fi
    say "purged: $STATE, $ETC and the parallax user"
  else
    say "kept: $STATE (the rep's data) and $ETC (remove with --uninstall --purge)"
  fi
  [ "$REBOOT_NEEDED" -eq 0 ] || say "reboot to return the USB-C port to host mode"
}

if [ "$MODE" = uninstall ]; then
  uninstall
  exit 0
fi

say "installing Parallax Edge from $SRC into $ROOT"
install_packages
create_user
copy_source
install_venv
write_config
make_state
provision_models
install_board
enable_units
if [ "$REBOOT_NEEDED" -eq 1 ]; then
  echo
  echo "*** REBOOT NEEDED: the USB-C port becomes a USB device (the computer's sound card) only after"
  echo "*** a reboot. Then run 'parallax doctor' to check the box."
else
  say "done: run 'parallax doctor' to check the box"
fi
