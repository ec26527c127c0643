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

skip() {
  echo "SKIPPED: $*" >&2
  exit 77
}

[ "$(id -u)" -eq 0 ] || skip "the fail mode test needs root to create network namespaces"
for tool in ip iptables ip6tables socat ss timeout stat; do
  command -v "$tool" >/dev/null || skip "$tool is not installed; run tools/install-deps"
done

# shellcheck source=netns.sh
source "$here/netns.sh"

work=$(mktemp -d)
daemon_pid=
stream_pid=
cleanup() {
  for pid in $daemon_pid $stream_pid; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  netns_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# A pass is tried three times, so a lost datagram on a loaded machine does
# not fail the test. A block is checked once, because any reply fails it.
expect_pass() {
  local answer attempt
  for attempt in 1 2 3; do
    answer=$(netns_probe "$1" "$2" "$3")
    [ "$answer" = "$1 $3" ] && { echo "ok: $1/IPv$2 port $3 passes"; return 0; }
  done
  fail "$1/IPv$2 to port $3 should pass but got no reply ($4)"
}

expect_blocked() {
  local answer
  answer=$(netns_probe "$1" "$2" "$3")
  if [ -n "$answer" ]; then
    fail "$1/IPv$2 to port $3 should be blocked but got '$answer' ($4)"
  else
    echo "ok: $1/IPv$2 port $3 blocked"
  fi
}

# $1: pass or blocked, $2: port, $3: what the check is about, for messages.
expect_all() {
  local protocol family
  for protocol in tcp udp; do
    for family in 4 6; do
      "expect_$1" "$protocol" "$family" "$2" "$3"
    done
  done
}

start_daemon() { # RULE_FILE
  : >"$work/daemon.log"
  ip netns exec "$netns_server" "$portwall" run --rules "$1" --mode packet \
    --socket "$work/portwall.sock" --state-dir "$work/state" 2>>"$work/daemon.log" &
  daemon_pid=$!
  local i
  for i in $(seq 100); do
    grep -q "info: started:" "$work/daemon.log" && return 0
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "portwall run did not start; its log:"
  cat "$work/daemon.log" >&2
  return 1
}

stop_daemon() {
  kill -TERM "$daemon_pid"
  local status=0
  wait "$daemon_pid" || status=$?
  daemon_pid=
  [ "$status" -eq 0 ] || fail "daemon exited with status $status after SIGTERM"
  local hooks
  hooks=$(ip netns exec "$netns_server" iptables -S; ip netns exec "$netns_server" ip6tables -S)
  if grep -q "PORTWALL\|NFQUEUE" <<<"$hooks"; then
    fail "hook rules left behind after SIGTERM: $hooks"
  fi
}

# A slow TCP stream (about 100 KiB/s for at most 60 s) from the client to a
# server that appends it to $work/stream.bin, to see whether established
# traffic keeps flowing.
start_stream() {
  rm -f "$work/stream.bin"
  ip netns exec "$netns_server" timeout 60 socat -u TCP4-LISTEN:7000,reuseaddr \
    "OPEN:$work/stream.bin,creat,append" &
  netns_pids+=($!)
  netns_wait_listening 7000 || fail "stream server on port 7000 did not start"
  (
    for _ in $(seq 6000); do
      head -c 1024 /dev/zero
      sleep 0.01
    done
  ) | ip netns exec "$netns_client" timeout 60 socat -u - "TCP4:$netns_server_v4:7000" &
  stream_pid=$!
}

stream_size() { stat -c %s "$work/stream.bin" 2>/dev/null || echo 0; }

# Prints how many bytes the stream delivered during one second.
stream_growth() {
  local before after
  before=$(stream_size)
  sleep 1
  after=$(stream_size)
  echo $((after - before))
}

stop_stream() {
  kill -TERM "$stream_pid" 2>/dev/null || true
  wait "$stream_pid" 2>/dev/null || true
  stream_pid=
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
  start_daemon "$work/$mode.toml"
  expect_all pass 9000 "fail=$mode, daemon running"
  expect_all blocked 9001 "fail=$mode, daemon running"
  grep -q "fail=$mode\|fail $mode\|fail: $mode" "$work/daemon.log" ||
    fail "the start log does not name the fail mode '$mode'"

  start_stream
  sleep 1
  growth=$(stream_growth)
  [ "$growth" -gt 0 ] || fail "the TCP stream does not flow while the daemon runs"

  echo "== fail=$mode: SIGKILL under traffic"
  kill -KILL "$daemon_pid"
  wait "$daemon_pid" 2>/dev/null || true
  daemon_pid=
  ip netns exec "$netns_server" iptables -S PORTWALL | grep -q NFQUEUE ||
    fail "the hooks should stay after SIGKILL (nobody removes them)"
  sleep 0.5
  growth=$(stream_growth)
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
  stop_stream

  echo "== fail=$mode: restart replaces the hooks"
  start_daemon "$work/$mode.toml"
  jumps=$(ip netns exec "$netns_server" iptables -S INPUT | grep -c "j PORTWALL" || true)
  [ "$jumps" -eq 1 ] || fail "expected one jump to PORTWALL after restart, found $jumps"
  expect_all pass 9000 "fail=$mode, after restart"
  expect_all blocked 9001 "fail=$mode, after restart"
  stop_daemon
done

echo "== reload from fail=open to fail=closed"
write_rules open "$work/reload.toml"
start_daemon "$work/reload.toml"
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
start_daemon "$work/reload.toml"
stop_daemon

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all fail mode checks passed"
