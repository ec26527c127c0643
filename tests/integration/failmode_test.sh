#!/usr/bin/env bash
# Fail modes of `portwall run` in packet mode, in two network namespaces this
# test creates and removes. For fail=open and then fail=closed:
#   1. the daemon runs: port 9000 passes, 9001 is dropped by a rule;
#   2. a TCP stream to port 7000 flows, and the daemon gets SIGKILL, so its
#      hook rules stay behind with no reader on the queue;
#   3. open: the stream keeps flowing and 9000 and 9001 both pass (kernel
#      bypass); closed: the stream stops and 9000 is dropped, but the admin
#      port 2222 still accepts TCP over IPv4 and IPv6;
#   4. a restarted daemon replaces the old hooks: 9000 passes, 9001 is
#      dropped again, and SIGTERM leaves no hook rules behind.
# Then a reload that turns fail=open into fail=closed changes the hooks and
# the queue flags at once: after SIGKILL, 9000 is dropped and 2222 passes.
#
# Usage: failmode_test.sh PORTWALL_BINARY. Needs root; exits 77 (skipped)
# without it.
set -euo pipefail

portwall=${1:?usage: failmode_test.sh PORTWALL_BINARY}
here=$(cd "$(dirname "$0")" && pwd)

# shellcheck source=testlib.sh
source "$here/testlib.sh"
testlib_begin "the fail mode test needs root to create network namespaces" \
  ip iptables ip6tables socat ss timeout stat

# $1: pass or blocked, $2: port, $3: what the check is about, for messages.
expect_all() {
  local protocol family
  for protocol in tcp udp; do
    for family in 4 6; do
      "expect_$1" "$protocol" "$family" "$2" "$3"
    done
  done
}

start_packet_daemon() { # RULE_FILE
  start_daemon --rules "$1" --mode packet || fail_with_log "portwall run did not start; its log:"
}

# Stop the daemon and check that it removed its hook rules.
stop_daemon_expect_no_hooks() {
  stop_daemon
  expect_no_hooks "after SIGTERM"
}

write_rules() { # FAIL_MODE FILE
  cat >"$2" <<EOF
version = 1

[daemon]
fail = "$1"
admin_ports = [2222]

[policy]
input = "accept"

[[rule]]
name = "block-9001"
action = "drop"
dport = 9001
EOF
}

netns_setup "$(printf 'f%03x' $((RANDOM % 4096)))"
for port in 9000 9001 2222; do
  netns_serve "$port"
  netns_wait_listening "$port" || fail "servers on port $port did not start"
done

for mode in open closed; do
  echo "== fail=$mode: daemon running"
  write_rules "$mode" "$work/$mode.toml"
  start_packet_daemon "$work/$mode.toml"
  expect_all pass 9000 "fail=$mode, daemon running"
  expect_all blocked 9001 "fail=$mode, daemon running"
  grep -q "fail=$mode\|fail $mode\|fail: $mode" "$work/daemon.log" ||
    fail "the start log does not name the fail mode '$mode'"

  start_stream 4 7000
  sleep 1
  growth=$(stream_growth 4-7000)
  [ "$growth" -gt 0 ] || fail "the TCP stream does not flow while the daemon runs"

  echo "== fail=$mode: SIGKILL under traffic"
  kill -KILL "$daemon_pid"
  wait "$daemon_pid" 2>/dev/null || true
  daemon_pid=
  ip netns exec "$netns_server" iptables -S PORTWALL | grep -q NFQUEUE ||
    fail "the hooks should stay after SIGKILL (nobody removes them)"
  sleep 0.5
  growth=$(stream_growth 4-7000)
  if [ "$mode" = open ]; then
    [ "$growth" -gt 0 ] || fail "fail=open: the stream stopped after SIGKILL (grew $growth bytes)"
    expect_all pass 9000 "fail=open, daemon killed"
    expect_all pass 9001 "fail=open, daemon killed: the bypass passes every packet"
  else
    [ "$growth" -eq 0 ] || fail "fail=closed: the stream kept flowing after SIGKILL ($growth B/s)"
    expect_blocked tcp 4 9000 "fail=closed, daemon killed"
    expect_blocked tcp 6 9000 "fail=closed, daemon killed"
    expect_blocked udp 4 9000 "fail=closed, daemon killed"
    expect_pass tcp 4 2222 "fail=closed, daemon killed: admin port"
    expect_pass tcp 6 2222 "fail=closed, daemon killed: admin port"
  fi
  stop_streams

  echo "== fail=$mode: restart replaces the hooks"
  start_packet_daemon "$work/$mode.toml"
  jumps=$(ip netns exec "$netns_server" iptables -S INPUT | grep -c "j PORTWALL" || true)
  [ "$jumps" -eq 1 ] || fail "expected one jump to PORTWALL after restart, found $jumps"
  expect_all pass 9000 "fail=$mode, after restart"
  expect_all blocked 9001 "fail=$mode, after restart"
  stop_daemon_expect_no_hooks
done

echo "== reload from fail=open to fail=closed"
write_rules open "$work/reload.toml"
start_packet_daemon "$work/reload.toml"
write_rules closed "$work/reload.toml"
kill -HUP "$daemon_pid"
for _ in $(seq 50); do
  grep -q "queue 0: fail mode now closed" "$work/daemon.log" && break
  sleep 0.1
done
grep -q "reload: fail closed, admin ports 2222" "$work/daemon.log" ||
  fail "the reload did not log the new fail mode and admin ports"
grep -q "queue 0: fail mode now closed" "$work/daemon.log" ||
  fail "the queue flags were not switched to fail closed"
chain=$(ip netns exec "$netns_server" iptables -S PORTWALL)
grep -q -- "--queue-bypass" <<<"$chain" && fail "the reloaded chain still bypasses: $chain"
grep -q -- "--dport 2222 -j ACCEPT" <<<"$chain" ||
  fail "the reloaded chain does not accept the admin port: $chain"
"$portwall" status --socket "$work/portwall.sock" | grep -q "fail: closed" ||
  fail "status does not show fail closed after the reload"
expect_all blocked 9001 "after the reload"
kill -KILL "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
expect_blocked tcp 4 9000 "reloaded to fail=closed, daemon killed"
expect_blocked tcp 6 9000 "reloaded to fail=closed, daemon killed"
expect_pass tcp 4 2222 "reloaded to fail=closed, daemon killed: admin port"
start_packet_daemon "$work/reload.toml"
stop_daemon_expect_no_hooks

testlib_finish "all fail mode checks passed"
