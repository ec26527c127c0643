#!/usr/bin/env bash
# Flow mode of `portwall run`, in two network namespaces this test creates
# and removes:
#   1. established TCP streams (IPv4 and IPv6) flow while almost none of
#      their packets reach the queue, because the kernel accepts them;
#   2. a SIGHUP reload with a rule that blocks port 7000 stops the open
#      streams to port 7000 (their conntrack entries are cut, so their next
#      packets meet the queue and the new rule) while a stream to port 7100
#      keeps flowing;
#   3. new connections are judged by the new rules: 9001 is now dropped and
#      9000 still passes, over TCP and UDP, IPv4 and IPv6.
#
# Usage: flow_test.sh PORTWALL_BINARY. Needs root; exits 77 (skipped)
# without it.
set -euo pipefail

portwall=${1:?usage: flow_test.sh PORTWALL_BINARY}
here=$(cd "$(dirname "$0")" && pwd)

skip() {
  echo "SKIPPED: $*" >&2
  exit 77
}

[ "$(id -u)" -eq 0 ] || skip "the flow mode test needs root to create network namespaces"
for tool in ip iptables ip6tables socat ss timeout stat; do
  command -v "$tool" >/dev/null || skip "$tool is not installed; run tools/install-deps"
done

# shellcheck source=netns.sh
source "$here/netns.sh"

work=$(mktemp -d)
daemon_pid=
stream_pids=()
cleanup() {
  for pid in $daemon_pid "${stream_pids[@]}"; do
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

expect_pass() {
  local answer attempt
  for attempt in 1 2 3; do
    answer=$(netns_probe "$1" "$2" "$3")
    [ "$answer" = "$1 $3" ] && { echo "ok: $1/IPv$2 port $3 passes"; return 0; }
  done
  fail "$1/IPv$2 to port $3 should pass but got no reply"
}

expect_blocked() {
  local answer
  answer=$(netns_probe "$1" "$2" "$3")
  if [ -n "$answer" ]; then
    fail "$1/IPv$2 to port $3 should be blocked but got '$answer'"
  else
    echo "ok: $1/IPv$2 port $3 blocked"
  fi
}

# Packets the kernel has handed to queue 0 so far (its last packet id).
queued_packets() {
  ip netns exec "$netns_server" cat /proc/net/netfilter/nfnetlink_queue |
    awk '$1 == 0 { print $8 }'
}

# A slow TCP stream (about 100 KiB/s, at most 60 s) to PORT over FAMILY (4
# or 6), appended by the server to $work/stream-FAMILY-PORT.bin.
start_stream() { # FAMILY PORT
  local family=$1 port=$2 listen connect
  if [ "$family" = 4 ]; then
    listen="TCP4-LISTEN:$port,bind=$netns_server_v4,reuseaddr"
    connect="TCP4:$netns_server_v4:$port"
  else
    listen="TCP6-LISTEN:$port,bind=[$netns_server_v6],reuseaddr"
    connect="TCP6:[$netns_server_v6]:$port"
  fi
  ip netns exec "$netns_server" timeout 60 socat -u "$listen" \
    "OPEN:$work/stream-$family-$port.bin,creat,append" &
  netns_pids+=($!)
  netns_wait_listening "$port" || fail "stream server on port $port did not start"
  sleep 0.2 # the other family's listener on the same port may be up already
  (
    for _ in $(seq 6000); do
      head -c 1024 /dev/zero
      sleep 0.01
    done
  ) | ip netns exec "$netns_client" timeout 60 socat -u - "$connect" &
  stream_pids+=($!)
}

stream_size() { stat -c %s "$work/stream-$1.bin" 2>/dev/null || echo 0; }

# Prints the bytes that each listed stream (FAMILY-PORT) delivered during
# one second.
stream_growth() {
  local stream before=() index=0
  for stream in "$@"; do
    before+=("$(stream_size "$stream")")
  done
  sleep 1
  for stream in "$@"; do
    echo -n "$(($(stream_size "$stream") - before[index])) "
    index=$((index + 1))
  done
  echo
}

wait_log() { # PATTERN
  local i
  for i in $(seq 100); do
    grep -q -- "$1" "$work/daemon.log" && return 0
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "daemon log has no line matching '$1'; the log:"
  cat "$work/daemon.log" >&2
  return 1
}

cat >"$work/rules.toml" <<'EOF'
version = 1

[policy]
input = "accept"

[[rule]]
name = "block-9001"
action = "drop"
dport = 9001
EOF

netns_setup "$(printf 'w%03x' $((RANDOM % 4096)))"
for port in 9000 9001; do
  netns_serve "$port"
  netns_wait_listening "$port" || fail "servers on port $port did not start"
done

ip netns exec "$netns_server" "$portwall" run --rules "$work/rules.toml" --mode flow \
  2>"$work/daemon.log" &
daemon_pid=$!
wait_log "info: started:"
grep -q "mode flow" "$work/daemon.log" || fail "the start log does not name flow mode"
ip netns exec "$netns_server" iptables -S PORTWALL | grep -q "ctstate RELATED,ESTABLISHED" ||
  fail "no ESTABLISHED accept rule in the IPv4 hooks in flow mode"
ip netns exec "$netns_server" ip6tables -S PORTWALL | grep -q "ctstate RELATED,ESTABLISHED" ||
  fail "no ESTABLISHED accept rule in the IPv6 hooks in flow mode"

echo "== established streams stay in the kernel"
start_stream 4 7000
start_stream 6 7000
start_stream 4 7100
sleep 1
queued_before=$(queued_packets)
read -r -a growth <<<"$(stream_growth 4-7000 6-7000 4-7100)"
queued_after=$(queued_packets)
[ "${growth[0]}" -gt 0 ] || fail "the IPv4 stream to port 7000 does not flow before the reload"
[ "${growth[1]}" -gt 0 ] || fail "the IPv6 stream to port 7000 does not flow before the reload"
[ "${growth[2]}" -gt 0 ] || fail "the stream to port 7100 does not flow before the reload"
# Three streams send about 300 segments a second, and packet mode would
# queue every one of them.
queued=$((queued_after - queued_before))
if [ "$queued" -le 10 ]; then
  echo "ok: $queued packets queued in one second of established traffic"
else
  fail "flow mode queued $queued packets in one second of established traffic (want <= 10)"
fi

echo "== reload blocks port 7000: its open streams stop, 7100 keeps flowing"
cat >"$work/rules.toml" <<'EOF'
version = 1

[policy]
input = "accept"

[[rule]]
name = "block-stream"
action = "drop"
proto = "tcp"
dport = 7000

[[rule]]
name = "block-9001"
action = "drop"
dport = 9001
EOF
kill -HUP "$daemon_pid"
wait_log "info: reloaded"
wait_log "conntrack: .* cut,"
cut=$(sed -n 's/.*conntrack: .* \([0-9]*\) cut,.*/\1/p' "$work/daemon.log" | tail -1)
[ "${cut:-0}" -ge 2 ] ||
  fail "the reload marked ${cut:-no} conntrack entries, expected 2 (IPv4 and IPv6 streams)"
grep -q "conntrack: cut tcp 198.18.0.1:[0-9]* -> 198.18.0.2:7000 rule 'block-stream'" \
  "$work/daemon.log" || fail "no log line names the cut IPv4 connection and its rule"
grep -q "conntrack: cut tcp \[2001:db8::1\]:[0-9]* -> \[2001:db8::2\]:7000 rule 'block-stream'" \
  "$work/daemon.log" || fail "no log line names the cut IPv6 connection and its rule"
sleep 0.5
read -r -a growth <<<"$(stream_growth 4-7000 6-7000 4-7100)"
[ "${growth[0]}" -eq 0 ] || fail "the IPv4 stream to 7000 still flows after the block (${growth[0]} B/s)"
[ "${growth[1]}" -eq 0 ] || fail "the IPv6 stream to 7000 still flows after the block (${growth[1]} B/s)"
[ "${growth[2]}" -gt 0 ] || fail "the stream to port 7100 stopped, but no rule blocks it"
dropped=$(grep -c "dropped tcp .*:7000 by rule block-stream" "$work/daemon.log" || true)
echo "ok: streams to 7000 stopped; the daemon logged $dropped drops by rule block-stream"

echo "== new connections meet the new rules"
for family in 4 6; do
  for protocol in tcp udp; do
    expect_pass "$protocol" "$family" 9000
    expect_blocked "$protocol" "$family" 9001
  done
done

kill -TERM "$daemon_pid"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=
[ "$status" -eq 0 ] || fail "daemon exited with status $status after SIGTERM"

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all flow mode checks passed"
