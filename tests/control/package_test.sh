#!/usr/bin/env bash
# Build the Debian package with tools/package and check it without
# installing it. The test reads the control fields (dpkg-deb -I) and the file
# list (-c), then unpacks it (-x). In the unpacked tree the binary must run,
# the conffile must be rules/default.toml, the man page and bash completion
# must load, and the unit must pass systemd-analyze verify. Needs no root.
#
# Usage: package_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail

source_dir=$(realpath "${1:?usage: package_test.sh SOURCE_DIR BUILD_DIR}")
build_dir=$(realpath "${2:?usage: package_test.sh SOURCE_DIR BUILD_DIR}")

for tool in dpkg-deb systemd-analyze gzip bash; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIPPED: $tool is not installed; run tools/install-deps" >&2
    exit 77
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
pass() {
  echo "ok: $*"
}

package=$("$source_dir/tools/package" --build-dir "$build_dir" --output "$work/dist" | tail -n 1)
if [ ! -f "$package" ]; then
  echo "FAIL: no package built" >&2
  exit 1
fi
pass "built $(basename "$package")"

info=$(dpkg-deb -I "$package")
for field in "Package: portwall" "Architecture: $(dpkg --print-architecture)" "Depends: iptables" \
  libnetfilter-queue1 libmnl0 libpcap0.8; do
  grep -q -- "$field" <<<"$info" && pass "control has '$field'" || fail "control lacks '$field'"
done
meson_version=$(grep -oP "version: '\K[^']+" "$source_dir/meson.build" | head -n 1)
[ "$(dpkg-deb -f "$package" Version)" = "$meson_version" ] &&
  pass "version matches meson.build" || fail "version differs from meson.build"
dpkg-deb --ctrl-tarfile "$package" | tar -xO ./conffiles | grep -qx /etc/portwall/rules.toml &&
  pass "/etc/portwall/rules.toml is a conffile" || fail "rules.toml is not a conffile"

listing=$(dpkg-deb -c "$package" | awk '{ print $1, $2, $6 }')
expected=(
  "-rwxr-xr-x root/root ./usr/sbin/portwall"
  "-rw-r--r-- root/root ./lib/systemd/system/portwall.service"
  "-rw-r--r-- root/root ./etc/portwall/rules.toml"
  "-rw-r--r-- root/root ./usr/share/man/man8/portwall.8.gz"
  "-rw-r--r-- root/root ./usr/share/bash-completion/completions/portwall"
)
for file in "$source_dir"/rules/*.toml; do
  expected+=("-rw-r--r-- root/root ./usr/share/portwall/rules/$(basename "$file")")
done
for line in "${expected[@]}"; do
  grep -qxF -- "$line" <<<"$listing" && pass "contains $line" || fail "missing '$line'"
done

root=$work/root
dpkg-deb -x "$package" "$root"
"$root/usr/sbin/portwall" --version | grep -q "^portwall " && pass "the packaged binary runs" ||
  fail "the packaged binary does not run"
cmp -s "$root/etc/portwall/rules.toml" "$source_dir/rules/default.toml" &&
  pass "rules.toml is rules/default.toml" || fail "rules.toml differs from rules/default.toml"
"$root/usr/sbin/portwall" check "$root/etc/portwall/rules.toml" >/dev/null &&
  pass "the default rule file passes check" || fail "the default rule file fails check"
gzip -dc "$root/usr/share/man/man8/portwall.8.gz" | grep -q '^\.TH PORTWALL 8' &&
  pass "the man page is portwall(8)" || fail "the man page has no .TH PORTWALL 8"
for command in run check replay block allow unblock insert delete list status confirm; do
  gzip -dc "$root/usr/share/man/man8/portwall.8.gz" | grep -q "^\.B.* $command\b\|^\.B $command" ||
    fail "the man page does not describe '$command'"
done
completion=$(bash -c 'source /usr/share/bash-completion/bash_completion 2>/dev/null || true
  source "$1"; complete -p portwall' _ "$root/usr/share/bash-completion/completions/portwall")
[ "$completion" = "complete -F _portwall portwall" ] &&
  pass "bash completion registers _portwall" ||
  fail "bash completion: '$completion'"

# systemd-analyze verify checks that ExecStart's programs exist, so verify
# inside the unpacked tree, with the host's kill for ExecReload.
mkdir -p "$root/bin"
cp /bin/kill "$root/bin/kill"
if verify=$(systemd-analyze verify --man=no --root="$root" \
  /lib/systemd/system/portwall.service 2>&1) &&
  [ -z "$verify" ]; then
  pass "systemd-analyze verify accepts the unit"
else
  fail "systemd-analyze verify: $verify"
fi
unit=$root/lib/systemd/system/portwall.service
for line in "Before=network-pre.target shutdown.target" "Wants=network-pre.target" \
  "Restart=on-failure" 'ExecReload=/bin/kill -HUP $MAINPID'; do
  grep -qxF -- "$line" "$unit" && pass "unit has $line" || fail "unit lacks '$line'"
done

[ "$failures" -eq 0 ] || { echo "$failures checks failed" >&2; exit 1; }
echo "all package checks passed"
