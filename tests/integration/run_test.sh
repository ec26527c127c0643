#!/usr/bin/env bash
# Integration test of `portwall run` on real traffic, in two network
# namespaces it creates and removes: TCP and UDP over IPv4 and IPv6 to an
# allowed and a blocked port, a SIGHUP reload with a good file and then with
# a broken one, and SIGTERM, after which the hook rules must be gone.
#
# Usage: run_test.sh PORTWALL_BINARY [RUN_OPTION...]; the options go to
# `portwall run` (e.g. --queues 2 --mode flow). Needs root; exits 77
# (skipped) without.
set -euo pipefail

portwall=${1:?usage: run_test.sh PORTWALL_BINARY [RUN_OPTION...]}
shift
run_options=("$@")
expected_queues=1
for ((i = 0; i < ${#run_options[@]}; i++)); do
  if [ "${run_options[i]}" = --queues ]; then
    expected_queues=${run_options[i + 1]}
  fi
done
here=$(cd "$(dirname "$0")" && pwd)

# shellcheck source=testlib.sh
source "$here/testlib.sh"
testlib_begin "the netns integration test needs root to create network namespaces" \
  ip iptables ip6tables socat ss timeout

# $1: port that must pass, $2: port that must be blocked.
check_traffic() {
  local protocol family
  for protocol in tcp udp; do
    for family in 4 6; do
      expect_pass "$protocol" "$family" "$1"
      expect_blocked "$protocol" "$family" "$2"
    done
  done
}

# Rule files. First: accept by default and block 9001 by a rule.
cat >"$work/first.toml" <<'EOF'
version = 1

[policy]
input = "accept"

[[rule]]
name = "block-9001"
action = "drop"
dport = 9001
EOF

# Second: drop by default; allow 9001 and ICMP (IPv6 needs neighbour
# discovery), so 9000 is now blocked by the policy.
cat >"$work/second.toml" <<'EOF'
version = 1

[policy]
input = "drop"

[[rule]]
name = "allow-icmp"
action = "accept"
proto = ["icmp", "icmpv6"]

[[rule]]
name = "allow-9001"
action = "accept"
dport = 9001
EOF

# Broken: a port out of range. Reloading it must change nothing.
cat >"$work/broken.toml" <<'EOF'
version = 1

[policy]
input = "accept"

[[rule]]
name = "open-all"
action = "accept"
dport = 70000
EOF

netns_setup "$(printf '%04x' $((RANDOM)))"
netns_serve 9000
netns_serve 9001
netns_wait_listening 9000 || fail "servers on port 9000 did not start"
netns_wait_listening 9001 || fail "servers on port 9001 did not start"

cp "$work/first.toml" "$work/rules.toml"
start_daemon --rules "$work/rules.toml" "${run_options[@]}" ||
  fail_with_log "portwall run did not start; its log:"

echo "== hooks installed"
hooks_v4=$(ip netns exec "$netns_server" iptables -S)
hooks_v6=$(ip netns exec "$netns_server" ip6tables -S)
grep -q NFQUEUE <<<"$hooks_v4" || fail "no NFQUEUE rule for IPv4 while the daemon runs"
grep -q NFQUEUE <<<"$hooks_v6" || fail "no NFQUEUE rule for IPv6 while the daemon runs"

echo "== first rules: 9000 passes, 9001 blocked by rule block-9001"
check_traffic 9000 9001
grep -q "dropped tcp 198.18.0.1:[0-9]* -> 198.18.0.2:9001 by rule block-9001" "$work/daemon.log" ||
  fail "no drop log line naming rule block-9001, address and port"

echo "== reload with a good file: 9001 passes, 9000 blocked by the policy"
cp "$work/second.toml" "$work/rules.toml"
kill -HUP "$daemon_pid"
wait_log "info: reloaded"
check_traffic 9001 9000

echo "== reload with a broken file: nothing changes"
cp "$work/broken.toml" "$work/rules.toml"
kill -HUP "$daemon_pid"
wait_log "reload failed"
grep -q "rules.toml:[0-9]*:[0-9]*: error:" "$work/daemon.log" ||
  fail "the broken file's error is not logged as FILE:LINE:COLUMN: error:"
check_traffic 9001 9000

echo "== SIGTERM: the daemon stops, removes its hooks and prints its counters"
stop_daemon
expect_no_hooks "after SIGTERM"

# Every packet the kernel queued got a verdict: for each queue nothing waits
# in the kernel, and the reader counted as many packets as the kernel
# delivered (ids handed out minus failed deliveries).
value() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$2"; }
total_accepted=0
total_dropped=0
queues_seen=0
for queue in $(sed -n 's/.* queue \([0-9]*\) counters:.*/\1/p' "$work/daemon.log"); do
  counters=$(grep "queue $queue counters:" "$work/daemon.log")
  kernel=$(grep "queue $queue kernel:" "$work/daemon.log" || true)
  packets=$(value packets "$counters")
  total_accepted=$((total_accepted + $(value accepted "$counters")))
  total_dropped=$((total_dropped + $(value dropped "$counters")))
  queues_seen=$((queues_seen + 1))
  if [ -z "$kernel" ]; then
    fail "no kernel counters for queue $queue"
    continue
  fi
  [ "$(value waiting "$kernel")" = 0 ] || fail "packets still waiting in the kernel: $kernel"
  last_id=$(value last_packet_id "$kernel")
  user_dropped=$(value user_dropped "$kernel")
  [ "$packets" = "$((last_id - user_dropped))" ] ||
    fail "queue $queue: reader judged $packets packets, the kernel delivered $((last_id - user_dropped))"
done
[ "$queues_seen" -eq "$expected_queues" ] ||
  fail "counters for $queues_seen queues in the log, expected $expected_queues"
[ "$total_dropped" -gt 0 ] || fail "dropped counters sum to $total_dropped, expected > 0"
[ "$total_accepted" -gt 0 ] || fail "accepted counters sum to $total_accepted, expected > 0"
grep -q "rule allow-9001 (accept): packets=[1-9]" "$work/daemon.log" ||
  fail "no hits counted for rule allow-9001"
grep -q "policy (drop): packets=[1-9]" "$work/daemon.log" || fail "no hits counted for the policy"

echo "== daemon log"
cat "$work/daemon.log"

testlib_finish "all checks passed"
