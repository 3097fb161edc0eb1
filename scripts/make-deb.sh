#!/usr/bin/env bash
# Builds equivd_<version>_<arch>.deb in .build/deb/: both binaries with the Swift runtime linked
# statically (dynamic only against Debian's own libraries, which dpkg-shlibdeps turns into
# Depends:), the default bundle and the samples in /usr/share/equivd, the configuration as a
# conffile, the unit (not enabled), sysusers.d and tmpfiles.d, man pages and bash completions.
#   scripts/make-deb.sh     # (make deb) then: apt install ./.build/deb/equivd_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/.*static let string = "\(.*\)"/\1/p' Sources/EquivProtocol/Version.swift)
ARCH=$(dpkg --print-architecture)
OUT=.build/deb
STAGE=$OUT/root
SCRATCH=.build/static  # a build folder of its own: the static link does not disturb .build/release
# No $ORIGIN run path (nothing is installed beside the binaries); symbols bound at load (BIND_NOW)
# so the GOT can be read-only.
BUILD=(swift build -c release --static-swift-stdlib --disable-local-rpath -Xlinker -z -Xlinker now --scratch-path "$SCRATCH")
"${BUILD[@]}" --product equivd
"${BUILD[@]}" --product equivctl
BIN=$("${BUILD[@]}" --show-bin-path)

rm -rf "$STAGE"
install -d "$STAGE/DEBIAN" "$STAGE/usr/bin" "$STAGE/usr/share/equivd" "$STAGE/etc/equivd" \
    "$STAGE/lib/systemd/system" "$STAGE/usr/lib/sysusers.d" "$STAGE/usr/lib/tmpfiles.d" \
    "$STAGE/usr/share/man/man1" "$STAGE/usr/share/bash-completion/completions" "$STAGE/usr/share/doc/equivd"
for b in equivd equivctl; do
    install -m 0755 "$BIN/$b" "$STAGE/usr/bin/$b"
    strip --strip-unneeded --remove-section=.comment "$STAGE/usr/bin/$b"
    if readelf -d "$STAGE/usr/bin/$b" | grep -qE 'R(UN)?PATH'; then
        echo "make-deb: $b still has an RPATH/RUNPATH: it would look for the Swift toolchain" >&2
        exit 1
    fi
done
git rev-parse --short=12 HEAD > "$STAGE/usr/share/equivd/commit" 2>/dev/null || echo unknown > "$STAGE/usr/share/equivd/commit"
cp -r Models "$STAGE/usr/share/equivd/Models"
cp -r Samples "$STAGE/usr/share/equivd/Samples"
# The shipped configuration, with the installed bundle.
sed 's|^# bundle = "Models" .*|bundle = "/usr/share/equivd/Models"   # the bundle this package installs|' Config/equivd.toml \
    > "$STAGE/etc/equivd/equivd.toml"
grep -q '^bundle = "/usr/share/equivd/Models"' "$STAGE/etc/equivd/equivd.toml"
install -m 0644 systemd/equivd.service "$STAGE/lib/systemd/system/equivd.service"
install -d "$STAGE/usr/share/doc/equivd/examples"
cp systemd/equivd.service.d/network.conf "$STAGE/usr/share/doc/equivd/examples/network.conf"
cp -r docs/fleet "$STAGE/usr/share/doc/equivd/examples/fleet"
install -m 0644 systemd/equivd.sysusers "$STAGE/usr/lib/sysusers.d/equivd.conf"
install -m 0644 systemd/equivd.tmpfiles "$STAGE/usr/lib/tmpfiles.d/equivd.conf"
for doc in README.md docs/operations.md docs/protocol.md docs/fleet.md; do
    [ -f "$doc" ] && install -m 0644 "$doc" "$STAGE/usr/share/doc/equivd/$(basename "$doc")"
done
install -m 0644 packaging/debian/copyright "$STAGE/usr/share/doc/equivd/copyright"
sed "s/@VERSION@/$VERSION/" packaging/debian/changelog | gzip -9n > "$STAGE/usr/share/doc/equivd/changelog.gz"  # a native package
# Man pages from the commands' own help (swift-argument-parser), one per command.
for b in equivd equivctl; do
    # Completions are sourced, not run: no #! line.
    "$STAGE/usr/bin/$b" --generate-completion-script bash | sed '1{/^#!/d}' > "$STAGE/usr/share/bash-completion/completions/$b"
    .venv/bin/python scripts/make-manpage.py "$STAGE/usr/bin/$b" "$VERSION" | gzip -9n > "$STAGE/usr/share/man/man1/$b.1.gz"
done
find "$STAGE" -type d -exec chmod 0755 {} +
find "$STAGE/usr/share" "$STAGE/etc" "$STAGE/lib" "$STAGE/usr/lib" -type f -exec chmod 0644 {} +

# Depends: what the binaries link, as Debian's own shlibs files state it.
mkdir -p "$OUT/shlibs/debian"
printf 'Source: equivd\n\nPackage: equivd\nArchitecture: any\n' > "$OUT/shlibs/debian/control"
DEPENDS=$(cd "$OUT/shlibs" && dpkg-shlibdeps -O "$(realpath -m ../root/usr/bin/equivd)" "$(realpath -m ../root/usr/bin/equivctl)" 2>/dev/null \
    | sed -n 's/^shlibs:Depends=//p')
[ -n "$DEPENDS" ] || { echo "make-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" -e "s/@DEPENDS@/$DEPENDS/" \
    packaging/debian/control.in > "$STAGE/DEBIAN/control"
echo /etc/equivd/equivd.toml > "$STAGE/DEBIAN/conffiles"
(cd "$STAGE" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$STAGE/DEBIAN/md5sums"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$STAGE/DEBIAN/$s"; done
DEB="$OUT/equivd_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "$DEB: $(du -h "$DEB" | cut -f1); Depends: $DEPENDS"
