#!/usr/bin/env bash
# Hook rules of `portwall run`, in a network namespace this test creates and
# removes:
#   1. the admin's own iptables rules and nft table are left exactly as they
#      were by start and stop, and the jump to PORTWALL is the first INPUT rule;
#   2. a stale PORTWALL chain (as a killed daemon leaves it) is replaced, not
#      doubled;
#   3. when the IPv6 half of the install fails (a stand-in ip6tables-restore
#      that exits 1), the daemon stops with that error and the IPv4 half is
#      rolled back;
#   4. --hook-backend nft on a kernel without the nft queue expression fails
#      with nft's error and leaves nothing behind; on a kernel with it, the
#      daemon starts and stops cleanly with the inet portwall table.
#
# Usage: hooks_test.sh PORTWALL_BINARY. Needs root; exits 77 (skipped)
# without it.
set -euo pipefail

portwall=${1:?usage: hooks_test.sh PORTWALL_BINARY}
here=$(cd "$(dirname "$0")" && pwd)

# shellcheck source=testlib.sh
source "$here/testlib.sh"
testlib_begin "the hooks test needs root to create a network namespace" \
  ip iptables ip6tables iptables-restore nft timeout

# One namespace is enough: the daemon runs in it and nothing probes it.
# Naming it netns_server lets start_daemon and the cleanup find it.
netns_server="pw-h-$(printf '%04x' $((RANDOM)))"

in_ns() { ip netns exec "$netns_server" "$@"; }

ruleset() {
  in_ns iptables -S
  in_ns ip6tables -S
  in_ns nft list table inet admin 2>/dev/null || true
}

# Wait for a daemon that must fail to start; prints its exit status.
wait_failed_start() {
  local status=0
  timeout 20 tail --pid="$daemon_pid" -f /dev/null || true
  wait "$daemon_pid" || status=$?
  daemon_pid=
  echo "$status"
}

no_portwall_rules() { # WHEN
  local rules
  rules=$(in_ns iptables -S; in_ns ip6tables -S; in_ns nft list ruleset)
  if grep -q "PORTWALL\|NFQUEUE\|table inet portwall\b" <<<"$rules"; then
    fail "portwall rules left behind $1:"
    echo "$rules" >&2
  else
    echo "ok: no portwall rules left $1"
  fi
}

cat >"$work/rules.toml" <<'EOF'
version = 1

[policy]
input = "accept"
EOF

ip netns add "$netns_server"
ip -n "$netns_server" link set lo up

echo "== the admin's own rules survive start and stop"
in_ns iptables -N ADMIN
in_ns iptables -A ADMIN -p tcp --dport 5555 -j ACCEPT
in_ns iptables -A INPUT -j ADMIN
in_ns ip6tables -A INPUT -p udp --dport 5556 -j ACCEPT
printf 'table inet admin {\n\tchain input {\n\t\ttype filter hook input priority 10;\n\t}\n}\n' |
  in_ns nft -f -
before=$(ruleset)
start_daemon --rules "$work/rules.toml" || fail_with_log "portwall run did not start"
first_v4=$(in_ns iptables -S INPUT | sed -n 2p)
first_v6=$(in_ns ip6tables -S INPUT | sed -n 2p)
[ "$first_v4" = "-A INPUT -j PORTWALL" ] || fail "first IPv4 INPUT rule is '$first_v4'"
[ "$first_v6" = "-A INPUT -j PORTWALL" ] || fail "first IPv6 INPUT rule is '$first_v6'"
grep -q "hooks iptables" "$work/daemon.log" || fail "the start log does not name the backend"
stop_daemon
after=$(ruleset)
if [ "$before" = "$after" ]; then
  echo "ok: the admin's rules are unchanged"
else
  fail "the admin's rules changed:"
  diff <(echo "$before") <(echo "$after") >&2 || true
fi
no_portwall_rules "after SIGTERM"

echo "== a stale chain is replaced, not doubled"
in_ns iptables -N PORTWALL
in_ns iptables -A PORTWALL -j NFQUEUE --queue-num 5
in_ns iptables -I INPUT -j PORTWALL
start_daemon --rules "$work/rules.toml" ||
  fail_with_log "portwall run did not start over a stale chain"
chain=$(in_ns iptables -S PORTWALL)
grep -q "queue-num 5" <<<"$chain" && fail "the stale rule survived the restart: $chain"
jumps=$(in_ns iptables -S INPUT | grep -c "j PORTWALL" || true)
[ "$jumps" -eq 1 ] || fail "expected one jump to PORTWALL, found $jumps"
stop_daemon
no_portwall_rules "after a restart over a stale chain"

echo "== a failed IPv6 install rolls the IPv4 half back"
mkdir "$work/bin"
cat >"$work/bin/ip6tables-restore" <<'EOF'
#!/bin/sh
echo "simulated ip6tables-restore failure" >&2
exit 1
EOF
chmod +x "$work/bin/ip6tables-restore"
PATH="$work/bin:$PATH" start_daemon --rules "$work/rules.toml" &&
  fail "portwall run started although ip6tables-restore failed"
status=$(wait_failed_start)
[ "$status" -ne 0 ] || fail "portwall run exited with status 0 after a failed install"
grep -q "simulated ip6tables-restore failure" "$work/daemon.log" ||
  fail "the log does not carry ip6tables-restore's output"
no_portwall_rules "after a failed IPv6 install"

echo "== --hook-backend nft"
if printf 'table inet portwall_probe {\n\tchain c {\n\t\tqueue to 0\n\t}\n}\n' |
  in_ns nft --check -f - 2>/dev/null; then
  start_daemon --rules "$work/rules.toml" --hook-backend nft ||
    fail_with_log "portwall run with nft did not start"
  in_ns nft list table inet portwall | grep -q "queue" || fail "no queue rule in inet portwall"
  stop_daemon
  no_portwall_rules "after SIGTERM with nft"
else
  start_daemon --rules "$work/rules.toml" --hook-backend nft &&
    fail "portwall run started with nft, which cannot queue here"
  status=$(wait_failed_start)
  [ "$status" -ne 0 ] || fail "portwall run exited with status 0 without the nft queue"
  grep -q "nft backend unavailable" "$work/daemon.log" ||
    fail "the log does not say that the nft backend is unavailable"
  echo "ok: the nft backend is reported unavailable on this kernel"
  no_portwall_rules "after a refused nft install"
fi

testlib_finish "all hook checks passed"
