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

# shellcheck source=testlib.sh
source "$here/testlib.sh"
testlib_begin "the flow mode test needs root to create network namespaces" \
  ip iptables ip6tables socat ss timeout stat

# Packets the kernel has handed to queue 0 so far (its last packet id).
queued_packets() {
  ip netns exec "$netns_server" cat /proc/net/netfilter/nfnetlink_queue |
    awk '$1 == 0 { print $8 }'
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

start_daemon --rules "$work/rules.toml" --mode flow ||
  fail_with_log "portwall run did not start; its log:"
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

stop_daemon

testlib_finish "all flow mode checks passed"
