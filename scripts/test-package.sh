#!/usr/bin/env bash
# Installs the .deb of `make deb` into a Debian 12 chroot that has no Swift toolchain
# (debootstrap, minbase; made once and cached, each run on a fresh copy) and checks there:
# apt resolves the Depends, the user and folders exist, `equivd --version`, `equivctl --version`,
# `equivd check-config` of the installed configuration, a replay of the installed samples with the
# installed bundle giving the accuracy the build tree gives, the installed unit verifies with
# systemd-analyze, a purge removes the state, and lintian finds no errors or warnings. (make test-package)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${EQUIVD_CHROOT_CACHE:-/var/tmp/equivd-debroot}
DEB=$(ls -t .build/deb/equivd_*.deb | head -1)
fail() { echo "test-package: FAIL: $*" >&2; exit 1; }
if [ ! -x "$CACHE/usr/bin/apt-get" ]; then
    echo "test-package: debootstrap bookworm into $CACHE (once)"
    for try in 1 2 3; do  # a mirror that hiccups once must not fail the run
        rm -rf "$CACHE"
        debootstrap --variant=minbase bookworm "$CACHE" http://deb.debian.org/debian >/dev/null && break
        [ "$try" = 3 ] && fail "debootstrap failed three times"
        sleep 10
    done
fi
WORK=$(mktemp -d /var/tmp/equivd-pkgtest.XXXXXX)
ROOT=$WORK/root
cleanup() { umount "$ROOT/proc" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cp -a "$CACHE" "$ROOT"
mount -t proc proc "$ROOT/proc"
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
[ ! -e "$ROOT/opt/swift" ] && ! in_root sh -c 'ls /usr/lib/swift /usr/lib/*/libswiftCore.so 2>/dev/null | grep -q .' \
    || fail "the chroot has a Swift runtime"
cp "$DEB" "$ROOT/tmp/equivd.deb"
in_root apt-get update -qq
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/equivd.deb >/dev/null
echo "installed: $(in_root dpkg-query -W -f='${Package} ${Version}, Depends: ${Depends}' equivd)"
in_root equivd --version | tee "$WORK/version"
grep -q "^equivd [0-9.]* (commit [0-9a-f]\{12\}" "$WORK/version" || fail "equivd --version names no commit"
grep -q "^bundle /usr/share/equivd/Models: canonicalizer [0-9a-f]\{12\}, classifier [0-9a-f]\{12\}" "$WORK/version" || fail "no bundle id"
in_root equivctl --version
in_root equivd check-config /etc/equivd/equivd.toml
in_root getent passwd equivd >/dev/null || fail "no user equivd"
in_root id -nG equivd | grep -qw audio || fail "equivd is not in group audio"
[ -d "$ROOT/var/lib/equivd/clips" ] || fail "no /var/lib/equivd/clips"
in_root equivd replay /usr/share/equivd/Samples/labels.csv --bundle /usr/share/equivd/Models --quiet --report /tmp/replay.json
want=$(.build/static/release/equivd replay Samples/labels.csv --bundle Models --quiet --report "$WORK/host.json" 2>/dev/null; \
       python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['accuracy'])" "$WORK/host.json")
got=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['accuracy'])" "$ROOT/tmp/replay.json")
[ "$got" = "$want" ] || fail "replay in the chroot: $got % accuracy, the build tree: $want %"
echo "replay of the installed samples: $got % (the build tree: $want %)"
# verify runs man(1) for Documentation=: pointed at the chroot's pages, it checks they are there.
verify=$(MANPATH="$ROOT/usr/share/man" systemd-analyze verify --root="$ROOT" equivd.service 2>&1) \
    && [ -z "$verify" ] || fail "systemd-analyze verify of the installed unit: $verify"
echo "systemd-analyze verify of the installed unit: clean"
[ -z "$(ls "$ROOT/etc/systemd/system/multi-user.target.wants/" 2>/dev/null | grep equivd)" ] || fail "the service was enabled"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq equivd >/dev/null
[ ! -e "$ROOT/var/lib/equivd" ] && [ ! -e "$ROOT/etc/equivd/equivd.toml" ] && [ ! -e "$ROOT/usr/bin/equivd" ] || fail "purge left files"
echo "purge: binaries, configuration and state removed"
lintian --fail-on error,warning --tag-display-limit 0 "$DEB" || fail "lintian found errors or warnings (above)"
echo "lintian: no errors or warnings"
echo "test-package: PASS"
