#!/usr/bin/env bash
# Overload test of `portwall run`: offer more packets than the queue can hold
# and check that the daemon stays up, counts what the kernel lost, and gives
# a verdict to every packet it received. The reader is paused with SIGSTOP
# while a bounded UDP flood arrives, so the overload does not depend on the
# speed of the machine.
#
# Fail closed: packets beyond the queue are dropped and counted by the kernel.
# Fail open: they pass unjudged (NFQA_CFG_F_FAIL_OPEN), so a counting receiver
# gets more datagrams than the daemon judged.
#
# Usage: overload_test.sh PORTWALL_BINARY. Needs root; exits 77 without.
set -euo pipefail

portwall=${1:?usage: overload_test.sh PORTWALL_BINARY}
here=$(cd "$(dirname "$0")" && pwd)

# shellcheck source=testlib.sh
source "$here/testlib.sh"
testlib_begin "the netns overload test needs root to create network namespaces" \
  ip iptables socat ss timeout python3

# Accept TCP 9000 and UDP 5000, drop UDP 5001 by a rule, accept the rest, so
# that a flood over 5000 and 5001 alternates verdicts.
cat >"$work/rules.toml" <<'EOF'
version = 1

[policy]
input = "accept"

[[rule]]
name = "sink"
action = "accept"
proto = "udp"
dport = 5000

[[rule]]
name = "block-5001"
action = "drop"
proto = "udp"
dport = 5001
EOF

# Small limits so that a few thousand packets overflow them: 64 queued
# packets, and the smallest receive buffer --rcvbuf accepts.
limits=(--queue-maxlen 64 --rcvbuf 65536)

# $@: extra options for portwall run. Log: $work/daemon.log.
start_limited_daemon() {
  start_daemon --rules "$work/rules.toml" "${limits[@]}" "$@" ||
    fail_with_log "daemon did not start"
}

flood() { # $1 address, $2 ports, $3 count
  ip netns exec "$netns_client" timeout 60 python3 "$here/udp_flood.py" send "$1" "$2" "$3"
}

value() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$2" | head -n 1; }

# $1: a key of `portwall status --json`'s daemon object, $2: an expected
# count. The status figure is the queue rule's counter less what the reader
# took, so it may differ by the few packets (neighbour discovery) that
# arrive between the two reads.
check_fail_count() {
  local status
  status=$("$portwall" status --json --socket "$work/portwall.sock") ||
    { fail "portwall status failed"; return; }
  python3 -c '
import json, sys
key, expected = sys.argv[1], int(sys.argv[2])
daemon = json.loads(sys.argv[3])["daemon"]
got = daemon.get(key)
print(f"status: {key}={got}, expected about {expected}")
if not isinstance(got, int) or abs(got - expected) > 5:
    sys.exit(1)' "$1" "$2" "$status" ||
    fail "status does not count what the fail mode did ($1, see above)"
}

# The kernel queue counters as `portwall status --json` reports them, summed.
kernel_lost_now() {
  "$portwall" status --json --socket "$work/portwall.sock" | python3 -c '
import json, sys
queues = json.load(sys.stdin)["kernel"]["queues"]
print(sum(q["dropped_queue_full"] + q["dropped_send_failed"] for q in queues))'
}

# Check the exit report: nothing waits in the kernel, and the reader judged
# every packet the kernel delivered (ids handed out minus failed deliveries).
check_every_packet_judged() {
  local counters kernel packets last_id user_dropped waiting
  counters=$(grep "queue 0 counters:" "$work/daemon.log" || true)
  kernel=$(grep "queue 0 kernel:" "$work/daemon.log" || true)
  packets=$(value packets "$counters")
  last_id=$(value last_packet_id "$kernel")
  user_dropped=$(value user_dropped "$kernel")
  waiting=$(value waiting "$kernel")
  if [ -z "$packets" ] || [ -z "$last_id" ]; then
    fail "counter lines missing from the daemon log"
    return
  fi
  [ "$waiting" = 0 ] || fail "$waiting packets still waiting in the kernel at exit"
  [ "$packets" = "$((last_id - user_dropped))" ] ||
    fail "reader judged $packets packets, the kernel delivered $((last_id - user_dropped))"
  echo "ok: $packets packets judged, $waiting waiting, kernel ids $last_id, user_dropped $user_dropped"
}

netns_setup "$(printf '%04x' $((RANDOM)))"
netns_serve 9000
netns_wait_listening 9000 || fail "server on port 9000 did not start"

echo "== fail closed: pause the reader, flood, resume"
start_limited_daemon --fail closed
kill -STOP "$daemon_pid"
flood "$netns_server_v4" 5000,5001 3000 >/dev/null
flood "$netns_server_v6" 5000,5001 3000 >/dev/null
kill -CONT "$daemon_pid"
# A flood while the reader runs, then the daemon must still pass traffic.
flood "$netns_server_v4" 5000,5001 20000 >/dev/null
sleep 0.5
kill -0 "$daemon_pid" 2>/dev/null || fail "daemon died under overload"
[ "$(netns_probe tcp 4 9000)" = "tcp 9000" ] || fail "TCP to 9000 does not pass after the overload"
[ "$(netns_probe tcp 6 9000)" = "tcp 9000" ] || fail "TCP/IPv6 to 9000 does not pass after the overload"
check_fail_count dropped_by_fail_closed "$(kernel_lost_now)"
stop_daemon "after the overload"
kernel=$(grep "queue 0 kernel:" "$work/daemon.log" || true)
counters=$(grep "queue 0 counters:" "$work/daemon.log" || true)
lost=$(($(value queue_dropped "$kernel") + $(value user_dropped "$kernel")))
[ "$lost" -gt 0 ] || fail "the kernel lost no packet, so the test did not overload the queue: $kernel"
if [ "$(value user_dropped "$kernel")" -gt 0 ] && [ "$(value enobufs "$counters")" -eq 0 ]; then
  fail "the kernel failed deliveries but the reader counted no ENOBUFS: $counters"
fi
grep -q "rule block-5001 (drop): packets=[1-9]" "$work/daemon.log" ||
  fail "no hits counted for rule block-5001"
check_every_packet_judged
echo "kernel: $kernel"
echo "reader: $counters"

echo "== fail open: packets beyond the queue pass unjudged"
ip netns exec "$netns_server" timeout 90 python3 "$here/udp_flood.py" count "$netns_server_v4" 5000 2 \
  >"$work/received" &
counter_pid=$!
netns_pids+=("$counter_pid")
start_limited_daemon --fail open
kill -STOP "$daemon_pid"
sent=$(flood "$netns_server_v4" 5000 3000)
kill -CONT "$daemon_pid"
wait "$counter_pid" || true
received=$(cat "$work/received")
sink_hits=$("$portwall" list --json --socket "$work/portwall.sock" | python3 -c '
import json, sys
print(next(r["packets"] for r in json.load(sys.stdin)["rules"] if r["name"] == "sink"))')
check_fail_count passed_by_fail_open "$((received - sink_hits))"
stop_daemon "after the overload"
judged=$(sed -n 's/.*rule sink (accept): packets=\([0-9]*\).*/\1/p' "$work/daemon.log")
kernel=$(grep "queue 0 kernel:" "$work/daemon.log" || true)
echo "sent $sent, received $received, judged by rule sink ${judged:-?}"
[ "${judged:-0}" -gt 0 ] || fail "the daemon judged no packet of the flood"
[ "${received:-0}" -gt "${judged:-0}" ] ||
  fail "received $received datagrams, not more than the $judged judged: fail-open did not bypass"
[ "$(value queue_dropped "$kernel")" = 0 ] || fail "fail open, yet the kernel dropped: $kernel"
check_every_packet_judged

if [ "$failures" -ne 0 ]; then
  echo "== daemon log" >&2
  cat "$work/daemon.log" >&2
fi
testlib_finish "all checks passed"
