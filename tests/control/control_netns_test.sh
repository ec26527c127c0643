#!/usr/bin/env bash
# Live control of `portwall run` in network namespaces this test creates and
# removes. It blocks and unblocks a port under a running UDP stream (IPv4 and
# IPv6) and keeps the block across a restart. It runs 20 concurrent clients
# and a SIGKILL during a stream of changes. It sends an unprivileged client,
# random and oversized requests, and a corrupt state file, and checks
# --offline edits, anti-lockout and status.
#
# Usage: control_netns_test.sh PORTWALL_BINARY [main|flow-cut]. "main" (the
# default) runs everything but the flow mode check, which "flow-cut" runs on
# its own. Needs root; exits 77 (skipped) without. Every daemon uses a
# socket and state directory under a
# temporary directory, never /run/portwall or /var/lib/portwall.
set -euo pipefail

portwall=$(realpath "${1:?usage: control_netns_test.sh PORTWALL_BINARY [main|flow-cut]}")
section=${2:-main}
here=$(cd "$(dirname "$0")" && pwd)

skip() {
  echo "SKIPPED: $*" >&2
  exit 77
}

[ "$(id -u)" -eq 0 ] || skip "the control netns test needs root to create network namespaces"
for tool in ip iptables ip6tables socat python3 setpriv ping timeout; do
  command -v "$tool" >/dev/null || skip "$tool is not installed; run tools/install-deps"
done

# shellcheck source=../integration/netns.sh
source "$here/../integration/netns.sh"

work=$(mktemp -d)
chmod 755 "$work" # the unprivileged client must reach the socket inside
socket=$work/portwall.sock
state=$work/state
rules=$work/rules.toml
daemon_pid=
cleanup() {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
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
pass() {
  echo "ok: $*"
}

# The file allows the stream's port, so a CLI block must win over it.
cat >"$rules" <<'EOF'
version = 1

[policy]
input = "accept"

[[rule]]
name = "stream"
action = "accept"
proto = "udp"
dport = 7100
comment = "the CLI block must win over this"
EOF

client() {
  "$portwall" "$@" --socket "$socket"
}

# $1: queue mode, packet (default) or flow.
start_daemon() {
  ip netns exec "$netns_server" "$portwall" run --rules "$rules" --socket "$socket" \
    --state-dir "$state" --mode "${1:-packet}" 2>>"$work/daemon.log" &
  daemon_pid=$!
  local i
  for i in $(seq 100); do
    if client status >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "daemon did not start; its log:" >&2
  cat "$work/daemon.log" >&2
  exit 1
}

stop_daemon() {
  kill -TERM "$daemon_pid"
  wait "$daemon_pid" || true
  daemon_pid=
}

now_ns() {
  date +%s%N
}

netns_setup "ctl$$"
netns_serve 7000

round_trip_us=$(ip netns exec "$netns_client" ping -c 3 -i 0.2 -q "$netns_server_v4" |
  awk -F/ '/^rtt/ { printf "%d", $5 * 1000 + 1 }')
echo "round trip on the veth pair: ${round_trip_us} us"
tolerance_ns=$((round_trip_us * 1000))

if [ "$section" = main ]; then
# --- block and unblock under a running stream, IPv4 and IPv6 -------------
start_daemon

for family in 4 6; do
  if [ "$family" = 4 ]; then server=$netns_server_v4; else server=$netns_server_v6; fi
  ip netns exec "$netns_server" python3 "$here/stream.py" receive "$server" 7100 9 \
    >"$work/received$family" &
  netns_pids+=($!)
done
sleep 0.5
for family in 4 6; do
  if [ "$family" = 4 ]; then server=$netns_server_v4; else server=$netns_server_v6; fi
  ip netns exec "$netns_client" python3 "$here/stream.py" send "$server" 7100 7 5 &
  netns_pids+=($!)
done

sleep 2
client block 7100/udp --comment "stream test" >/dev/null || fail "block 7100/udp failed"
blocked_at=$(now_ns)
sleep 2
# Datagrams sent while the unblock command runs may pass, so the blocked
# window ends when the command starts and the open one begins when it ends.
unblock_started=$(now_ns)
client unblock 7100/udp >/dev/null || fail "unblock 7100/udp failed"
unblocked_at=$(now_ns)
sleep 7

for family in 4 6; do
  before=$(awk -v t="$blocked_at" '$2 < t' "$work/received$family" | wc -l)
  late=$(awk -v t="$blocked_at" -v d="$tolerance_ns" -v u="$unblock_started" \
    '$2 > t + d && $2 < u' "$work/received$family" | wc -l)
  after=$(awk -v u="$unblocked_at" '$2 > u' "$work/received$family" | wc -l)
  [ "$before" -gt 0 ] && pass "IPv$family stream flowed before the block ($before datagrams)" ||
    fail "IPv$family stream did not flow before the block"
  [ "$late" -eq 0 ] &&
    pass "IPv$family: no datagram sent more than one round trip after the block got through" ||
    fail "IPv$family: $late datagrams sent after the block (+${round_trip_us} us) got through:" \
      "$(awk -v t="$blocked_at" -v u="$unblock_started" '$2 > t && $2 < u {
          printf "seq %d sent %+d us received %+d us; ", $1, ($2 - t) / 1000, ($3 - t) / 1000 }' \
        "$work/received$family")"
  [ "$after" -gt 0 ] && pass "IPv$family stream flows again after unblock ($after datagrams)" ||
    fail "IPv$family stream did not resume after unblock"
done

# --- the block survives a restart ----------------------------------------
client block 7000/tcp --comment "restart test" >/dev/null || fail "block 7000/tcp failed"
stop_daemon
start_daemon
if grep -q "restart test" <<<"$(client list)"; then
  pass "the block is listed after a restart"
else
  fail "the block is gone after a restart"
fi
for family in 4 6; do
  answer=$(netns_probe tcp "$family" 7000)
  [ -z "$answer" ] && pass "tcp/IPv$family 7000 still blocked after restart" ||
    fail "tcp/IPv$family 7000 passes after restart: '$answer'"
  answer=$(netns_probe udp "$family" 7000)
  [ "$answer" = "udp 7000" ] && pass "udp/IPv$family 7000 still passes" ||
    fail "udp/IPv$family 7000 should pass, got '$answer'"
done
# A reload of the rule file keeps the CLI rules in front of the file's.
kill -HUP "$daemon_pid"
for i in $(seq 50); do
  grep -q "CLI rules kept" "$work/daemon.log" && break
  sleep 0.1
done
grep -q "reloaded .*: 1 rules, 1 CLI rules kept" "$work/daemon.log" &&
  pass "SIGHUP reload keeps the CLI rule" || fail "SIGHUP reload did not report the kept CLI rule"
[ -z "$(netns_probe tcp 4 7000)" ] && pass "tcp/IPv4 7000 still blocked after SIGHUP" ||
  fail "tcp/IPv4 7000 passes after SIGHUP"
client delete 1 >/dev/null || fail "delete 1 failed"
answer=$(netns_probe tcp 4 7000)
[ "$answer" = "tcp 7000" ] &&
  pass "tcp 7000 passes after delete" || fail "tcp 7000 after delete: '$answer'"

# --- 20 concurrent clients -------------------------------------------------
client_pids=()
for i in $(seq 0 19); do
  (
    client block "$((8000 + i))/tcp" --from "198.18.1.$i" >/dev/null
    if [ $((i % 2)) -eq 0 ]; then
      client unblock "$((8000 + i))/tcp" --from "198.18.1.$i" >/dev/null
    fi
    client allow "$((9000 + i))" --to "2001:db8::2" >/dev/null
  ) &
  client_pids+=($!)
done
for pid in "${client_pids[@]}"; do
  wait "$pid" || fail "a concurrent client failed"
done
listed=$(client list --json | python3 -c '
import json, sys
report = json.load(sys.stdin)
cli = report["rules"][: report["cli_rules"]]
lines = (" ".join([r["action"], ",".join(r["dport"]), ",".join(r["src"]), ",".join(r["dst"])])
         for r in cli)
print("\n".join(sorted(lines)))')
saved=$(tail -n +2 "$state/state.jsonl" | python3 -c '
import json, sys
rules = [json.loads(line) for line in sys.stdin]
def port(r): return r.get("port", "").split("/")[0]
lines = (" ".join([r["action"], port(r), ",".join(r.get("from", [])), ",".join(r.get("to", []))])
         for r in rules)
print("\n".join(sorted(lines)))')
count=$(echo "$listed" | grep -c . || true)
[ "$count" -eq 30 ] &&
  pass "20 concurrent clients left 30 CLI rules" || fail "expected 30 CLI rules, got $count"
[ "$listed" = "$saved" ] && pass "the list and the state file agree" ||
  fail "list and state file differ: list=[$listed] state=[$saved]"

# --- SIGKILL during a stream of changes -----------------------------------
: >"$work/acknowledged"
(
  for i in $(seq 0 199); do
    if client block "$((20000 + i))/udp" >/dev/null 2>&1; then
      echo "$((20000 + i))" >>"$work/acknowledged"
    fi
  done
) &
changes_pid=$!
sleep 1
kill -KILL "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
wait "$changes_pid" || true
acknowledged=$(wc -l <"$work/acknowledged")
echo "changes acknowledged before SIGKILL: $acknowledged"
[ "$acknowledged" -gt 0 ] || fail "no change was acknowledged before SIGKILL"
if python3 - "$state/state.jsonl" "$work/acknowledged" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "", "the state file does not end with a newline"
assert json.loads(lines[0]) == {"portwall_state": 1}, "bad header"
ports = set()
for line in lines[1:-1]:
    rule = json.loads(line)  # every line is one whole JSON object
    ports.add(rule.get("port", ""))
acked = {p.strip() + "/udp" for p in open(sys.argv[2]) if p.strip()}
missing = acked - ports
assert not missing, f"acknowledged changes missing from the state: {sorted(missing)[:5]}"
streamed = {p for p in ports if p.startswith("2")}
assert len(streamed) - len(acked) <= 1, "more than one unacknowledged change in the state"
EOF
then
  pass "after SIGKILL the state file is valid and holds every acknowledged change"
else
  fail "the state file after SIGKILL is invalid or misses changes"
fi
start_daemon
pass "the daemon restarts from the state written before SIGKILL"

# --- unprivileged client, random and oversized requests --------------------
output=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
  "$portwall" list --socket "$socket" 2>&1) &&
  fail "an unprivileged client was served: $output"
echo "$output" | grep -q "permission denied: uid 65534" &&
  pass "unprivileged client refused: $output" ||
  fail "unprivileged client: unexpected output '$output'"

reply=$(head -c 4096 /dev/urandom | tr -d '\n' | socat -t5 - "UNIX-CONNECT:$socket" || true)
expected='{"error":"malformed request: request is not valid JSON","ok":false,"v":1}'
[ "$reply" = "$expected" ] &&
  pass "random bytes get an error reply" || fail "random bytes: reply '$reply'"
# A newline early in the bytes ends the request there. The rest stays unread
# until the server drains it: closing over unread bytes would end the
# client's read of the reply in ECONNRESET instead of a clean end of file.
reply=$(python3 -c '
import os, socket, sys
client = socket.socket(socket.AF_UNIX)
client.settimeout(5)
client.connect(sys.argv[1])
client.sendall(b"garbage\n" + os.urandom(5000))
client.shutdown(socket.SHUT_WR)
data = b""
try:
    while chunk := client.recv(65536):
        data += chunk
except ConnectionResetError:
    data += b" <connection reset>"
print(data.decode(errors="replace").strip())' "$socket" || true)
[ "$reply" = "$expected" ] &&
  pass "a bad line followed by more bytes gets an error reply and a clean end" ||
  fail "a bad line followed by more bytes: reply '$reply'"
reply=$(head -c 70000 /dev/zero | tr '\0' 'x' | socat -t5 - "UNIX-CONNECT:$socket" || true)
echo "$reply" | grep -q 'request is longer than 65536 bytes' &&
  pass "an oversized request gets an error reply" ||
  fail "oversized request: reply '$reply'"
client status >/dev/null && pass "the daemon still serves after bad requests" ||
  fail "the daemon stopped serving after bad requests"

# --- anti-lockout, status ----------------------------------------------------
output=$(SSH_CONNECTION="$netns_client_v4 50000 $netns_server_v4 22" client block 22/tcp 2>&1) &&
  fail "a block of the client's own SSH connection was applied"
echo "$output" | grep -q "would drop your own SSH connection" &&
  pass "anti-lockout refused the block" ||
  fail "anti-lockout: unexpected output '$output'"
[ "$(netns_probe udp 6 7000)" = "udp 7000" ] || fail "udp/IPv6 7000 should pass before status"
status=$(client status --json)
echo "$status" | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["running"] and s["cli_rules"] > 0, s
queues = s["kernel"]["queues"]
assert queues and queues[0]["queue"] == 0, s["kernel"]
assert s["daemon"]["packets"] > 0, s["daemon"]' >&2 &&
  pass "status --json has rules, counters and kernel queue 0" ||
  fail "status --json is incomplete (see the assertion above)"

# --- daemon down, --offline, corrupt state ---------------------------------
stop_daemon
output=$(client list 2>&1) && fail "list succeeded with the daemon down"
code=$(client list >/dev/null 2>&1; echo $?)
[ "$code" = 3 ] && echo "$output" | grep -q "daemon is not running" &&
  pass "daemon down: exit 3 and a clear message" || fail "daemon down: exit $code, '$output'"
"$portwall" block 7001/tcp --offline --state-dir "$state" --rules "$rules" \
  --comment offline >/dev/null ||
  fail "--offline block failed"
cp "$state/state.jsonl" "$work/state.good"
printf '{"action":"drop","port":"7' >>"$state/state.jsonl"
if ip netns exec "$netns_server" "$portwall" run --rules "$rules" --socket "$socket" \
  --state-dir "$state" 2>"$work/corrupt.log"; then
  fail "the daemon started with a corrupt state file"
elif grep -q "state.jsonl:[0-9]*:1: error: last line has no newline" "$work/corrupt.log"; then
  pass "a corrupt state file stops the start with its position"
else
  fail "corrupt state: unexpected log $(cat "$work/corrupt.log")"
fi
cp "$work/state.good" "$state/state.jsonl"
start_daemon
grep -q "offline" <<<"$(client list)" && pass "the --offline rule is in force after start" ||
  fail "the --offline rule is missing"
stop_daemon
fi

if [ "$section" = flow-cut ]; then
# --- flow mode: a block cuts connections that are already open -------------
# Established traffic bypasses the queue in flow mode, so only the conntrack
# mark set after the change sends an open connection back to the queue. The
# server echoes, so it sends right after each client line: a deleted entry
# would be re-created from the server's side and let the client pass.
start_daemon flow
for family in 4 6; do
  if [ "$family" = 4 ]; then server=$netns_server_v4; else server="[$netns_server_v6]"; fi
  ip netns exec "$netns_server" \
    socat "TCP$family-LISTEN:7200,bind=$server,fork,reuseaddr" EXEC:cat &
  netns_pids+=($!)
done
sleep 0.5
for family in 4 6; do
  if [ "$family" = 4 ]; then server=$netns_server_v4; else server=$netns_server_v6; fi
  ip netns exec "$netns_client" python3 "$here/stream.py" session "$server" 7200 12 20 \
    >"$work/session$family" &
  netns_pids+=($!)
done
sleep 1.5
client block 7200/tcp --comment "flow cut" >/dev/null || fail "block 7200/tcp in flow mode failed"
blocked_at=$(now_ns)
sleep 3
unblocked_at=$(now_ns)
client unblock 7200/tcp >/dev/null || fail "unblock 7200/tcp in flow mode failed"
grep "conntrack:" "$work/daemon.log" | tail -n 6
echo "conntrack entries of port 7200 after the cut:"
ip netns exec "$netns_server" conntrack -L -p tcp 2>/dev/null | grep 7200 || true
grep -q "conntrack: .* 2 cut" "$work/daemon.log" &&
  pass "flow mode: the block marked both open connections" ||
  fail "flow mode: the block did not mark 2 conntrack entries"
sleep 8 # TCP retransmits with backoff; the next try after the unblock comes within 7 s
grep -q "conntrack: .* 2 restored" "$work/daemon.log" &&
  pass "flow mode: the unblock cleared the mark of both connections" ||
  fail "flow mode: the unblock did not clear 2 marks"
for family in 4 6; do
  # Columns: sequence, time sent, time read back (the reader polls every 20 ms).
  # Lines sent more than a round trip after the block must not come back
  # before the unblock.
  before=$(awk -v t="$blocked_at" '$3 < t' "$work/session$family" | wc -l)
  during=$(awk -v t="$blocked_at" -v u="$unblocked_at" -v d="$tolerance_ns" \
    '$2 > t + d && $3 < u' "$work/session$family" | wc -l)
  after=$(awk -v u="$unblocked_at" '$3 > u' "$work/session$family" | wc -l)
  [ "$before" -gt 0 ] &&
    pass "flow mode: IPv$family connection echoed before the block ($before lines)" ||
    fail "flow mode: IPv$family connection did not echo before the block"
  [ "$during" -eq 0 ] && pass "flow mode: the open IPv$family connection stopped at the block" ||
    fail "flow mode: $during lines were echoed on the open IPv$family connection while blocked"
  [ "$after" -gt 0 ] &&
    pass "flow mode: the IPv$family connection flows again after the unblock ($after lines)" ||
    fail "flow mode: the IPv$family connection did not recover after the unblock"
done
stop_daemon

# --- flow mode: a restart cuts connections opened while the daemon was dead --
# After SIGKILL the hooks stay and fail open lets new connections pass
# unjudged. A block saved with --offline meanwhile must hold for such a
# connection from the restart on: the start's conntrack pass marks it.
start_daemon flow
kill -KILL "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
ip netns exec "$netns_client" python3 "$here/stream.py" session "$netns_server_v4" 7200 8 20 \
  >"$work/session-start" &
netns_pids+=($!)
sleep 1
"$portwall" block 7200/tcp --offline --state-dir "$state" --rules "$rules" \
  --comment "offline cut" >/dev/null || fail "--offline block 7200/tcp failed"
: >"$work/daemon.log"
start_daemon flow
started_at=$(now_ns)
sleep 3
early=$(awk -v t="$started_at" '$3 < t' "$work/session-start" | wc -l)
late=$(awk -v t="$started_at" -v d="$tolerance_ns" '$2 > t + d' "$work/session-start" | wc -l)
[ "$early" -gt 0 ] && pass "flow mode: the connection echoed while the daemon was dead" ||
  fail "flow mode: the connection opened while the daemon was dead did not echo"
grep -q "conntrack: .* [1-9][0-9]* cut" "$work/daemon.log" &&
  pass "flow mode: the restart marked the connection opened while the daemon was dead" ||
  fail "flow mode: the start did not mark the open connection"
[ "$late" -eq 0 ] && pass "flow mode: the saved block stopped it from the start" ||
  fail "flow mode: $late lines sent after the start were echoed despite the saved block"
stop_daemon
fi

if [ "$failures" -ne 0 ]; then
  echo "daemon log:" >&2
  tail -n 40 "$work/daemon.log" >&2
  echo "$failures checks failed" >&2
  exit 1
fi
echo "all control checks passed"
