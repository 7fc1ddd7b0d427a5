# Sourced by scripts/systemd-e2e and scripts/package-e2e: a real systemd 252
# booted in a PID/mount namespace over a disposable copy of a Debian bookworm
# root (debootstrap, cached), with its system bus; `inside CMD...` runs CMD in it.
#   e2e_prepare       checks the machine, makes $work and $root (skip = exit 77)
#   e2e_boot          boots systemd in $root, waits for running/degraded
#   e2e_start_unit [ARGS]  systemctl ARGS (default: start) icws-bridge, relaxing only what nested
#                     sandboxes refuse (sets $relaxed, prints a NOTE)
# The caller sets `set -euo pipefail` and may set ICWS_E2E_ROOTFS.

e2e_cache=${ICWS_E2E_ROOTFS:-/var/tmp/icws-bridge-e2e/bookworm}
# Changing this list needs a new cache path (the root is made once).
e2e_include=systemd,systemd-sysv,dbus
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; [ -n "${work:-}" ] && [ -f "$work/boot.log" ] && tail -15 "$work/boot.log"; exit 1; }

work=""
root=""
pid=""
inner=""

e2e_prepare() {
  [ "$(id -u)" -eq 0 ] || skip "needs root"
  command -v unshare >/dev/null && command -v nsenter >/dev/null || skip "needs util-linux unshare and nsenter"
  if [ ! -x "$e2e_cache/lib/systemd/systemd" ]; then
    command -v debootstrap >/dev/null || { apt-get install -y -qq debootstrap >/dev/null 2>&1 || skip "cannot install debootstrap"; }
    rm -rf "$e2e_cache.tmp"
    mkdir -p "$(dirname "$e2e_cache")"
    debootstrap --variant=minbase --include=$e2e_include bookworm "$e2e_cache.tmp" > "$e2e_cache.log" 2>&1 \
      || skip "debootstrap failed (no package mirror?): $(tail -1 "$e2e_cache.log")"
    mv "$e2e_cache.tmp" "$e2e_cache"
  fi
  # A disposable copy of the root, so runs do not see each other.
  work=$(mktemp -d /var/tmp/icws-e2e.XXXXXX)
  root="$work/root"
  cp -a "$e2e_cache" "$root"
  trap e2e_cleanup EXIT
  # A quiet boot: no getty, no networkd, no timers.
  for u in getty@tty1.service console-getty.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer; do
    chroot "$root" systemctl mask "$u" > /dev/null 2>&1 || true
  done
  mkdir -p "$root/opt/swift"
}

e2e_cleanup() {
  # Killing the namespace's PID 1 ends every process in it (systemd, dbus, the daemon).
  if [ -n "$inner" ]; then kill -9 "$inner" 2>/dev/null || true; fi
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  [ -n "$root" ] && { umount -R "$root" 2>/dev/null || true; }
  [ -n "$work" ] && rm -rf "$work"
}

inside() { nsenter -t "$inner" -m -p -r -w -- "$@"; }

e2e_boot() {
  unshare --pid --fork --mount --uts --ipc --propagation private -- bash -c '
    set -e
    root=$1
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs -o mode=755 tmpfs "$root/dev"
    for n in null zero full random urandom tty; do touch "$root/dev/$n"; mount --bind "/dev/$n" "$root/dev/$n"; done
    mkdir -p "$root/dev/pts" "$root/dev/shm"
    mount -t tmpfs -o mode=755 tmpfs "$root/run"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    if [ -d /opt/swift ]; then mount --bind /opt/swift "$root/opt/swift"; mount -o remount,bind,ro "$root/opt/swift"; fi
    exec chroot "$root" env container=other /lib/systemd/systemd --log-target=console --log-level=warning
  ' _ "$root" > "$work/boot.log" 2>&1 &
  local unshare_pid=$!
  for _ in $(seq 100); do
    pid=$(pgrep -P "$unshare_pid" || true)
    [ -n "$pid" ] && break
    sleep 0.1
  done
  [ -n "$pid" ] || { cat "$work/boot.log"; skip "systemd did not start in a namespace here"; }
  pid=$unshare_pid
  inner=$(pgrep -P "$unshare_pid")

  local state=""
  for _ in $(seq 300); do
    state=$(inside systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 0.1
  done
  case "$state" in running|degraded) ;; *) cat "$work/boot.log"; skip "systemd did not boot here (state: ${state:-none})" ;; esac
  echo "systemd booted ($state)"
}

e2e_unit_failed() {
  inside systemctl status icws-bridge.service --no-pager || true
  inside journalctl -u icws-bridge --no-pager | tail -30
  fail "$*"
}

relaxed=""
e2e_start_unit() {
  local action=("$@")
  [ ${#action[@]} -gt 0 ] || action=(start)
  if inside systemctl "${action[@]}" icws-bridge.service 2>/dev/null; then return 0; fi
  # Nested sandboxes refuse some of the unit's protections (device nodes, user
  # namespaces) and cannot hand credentials to another user. Say so, relax only
  # those, and go on; a failure for any other reason fails the test.
  local code why
  code=$(inside systemctl show -p ExecMainStatus --value icws-bridge.service)
  why=$(inside systemctl show -p StatusText --value icws-bridge.service)
  case "$code:$why" in
    226:*|217:*|78:*"no password"*) ;;
    *) e2e_unit_failed "systemctl ${action[*]} failed (status $code: $why)" ;;
  esac
  relaxed="PrivateDevices=no PrivateUsers=no, password-file instead of the credential"
  echo "NOTE: this machine cannot run the unit exactly as shipped (exit status $code${why:+: $why});"
  echo "      retrying with $relaxed"
  inside systemctl stop icws-bridge.service 2>/dev/null || true
  inside mkdir -p /etc/systemd/system/icws-bridge.service.d
  inside sh -c 'printf "[Service]\nPrivateDevices=no\nPrivateUsers=no\n" > /etc/systemd/system/icws-bridge.service.d/sandbox.conf'
  inside sh -c 'chown icws-bridge:icws-bridge /etc/icws-bridge/password && echo "password-file = /etc/icws-bridge/password" >> /etc/icws-bridge/icws-bridge.conf'
  inside systemctl daemon-reload
  inside systemctl reset-failed icws-bridge.service 2>/dev/null || true
  inside systemctl start icws-bridge.service || e2e_unit_failed "systemctl start failed even relaxed"
}

# Waits for the StatusText of a connected daemon (station 7001); prints it.
e2e_wait_connected() {
  local port=$1 status=""
  [ "$(inside systemctl is-active icws-bridge.service)" = active ] || fail "not active after start"
  for _ in $(seq 100); do
    status=$(inside systemctl show -p StatusText --value icws-bridge.service)
    case "$status" in *"station 7001"*) break ;; esac
    sleep 0.1
  done
  echo "status: $status"
  case "$status" in "connected to 127.0.0.1:$port as agent, station 7001"*) ;; *) inside journalctl -u icws-bridge --no-pager | tail -30; fail "unexpected StatusText: $status" ;; esac
}
