#!/usr/bin/env bash
# Who may use the control socket, and recovery from a state that stops the
# daemon, with `portwall run` in network namespaces this test creates and
# removes:
#  - a saved CLI rule whose set was removed from the rule file stops the
#    start. The error names the state file line and the delete command, and
#    running that command lets the daemon start.
#  - with --control-group staff, an unprivileged client (uid 65534) given the
#    group with setpriv may block and list. Since uid 65534 is not in staff
#    in the group database, this works only if the daemon reads the client's
#    groups from the socket.
#  - the same client without the group is rejected with exit status 1 and an
#    error naming its uid and groups.
#
# Usage: control_access_test.sh PORTWALL_BINARY. Needs root; exits 77
# (skipped) without. The socket and state directory live under a temporary
# directory, never /run/portwall or /var/lib/portwall.
set -euo pipefail

portwall=$(realpath "${1:?usage: control_access_test.sh PORTWALL_BINARY}")
here=$(cd "$(dirname "$0")" && pwd)

skip() {
  echo "SKIPPED: $*" >&2
  exit 77
}

[ "$(id -u)" -eq 0 ] || skip "the control access test needs root to create network namespaces"
for tool in ip iptables ip6tables socat setpriv getent timeout; do
  command -v "$tool" >/dev/null || skip "$tool is not installed; run tools/install-deps"
done
group_gid=$(getent group staff | cut -d: -f3) ||
  skip "group 'staff' not found; the control group test needs an existing group"

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

# $1: extra lines after the policy (a [sets] table or nothing).
write_rules() {
  printf 'version = 1\n\n[policy]\ninput = "accept"\n%s\n' "$1" >"$rules"
}

# Starts the daemon with the extra options given; returns 1 when it exits
# instead of serving the socket within 10 s.
start_daemon() {
  : >"$work/daemon.log"
  ip netns exec "$netns_server" "$portwall" run --rules "$rules" --socket "$socket" \
    --state-dir "$state" "$@" 2>>"$work/daemon.log" &
  daemon_pid=$!
  local i
  for i in $(seq 100); do
    if "$portwall" status --socket "$socket" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
      wait "$daemon_pid" || true
      daemon_pid=
      return 1
    fi
    sleep 0.1
  done
  return 1
}

stop_daemon() {
  kill -TERM "$daemon_pid"
  wait "$daemon_pid" || true
  daemon_pid=
}

netns_setup "acc$$"
netns_serve 7400
netns_wait_listening 7400 || fail "the test servers on port 7400 did not start"

# --- a saved rule whose set is gone ------------------------------------------
write_rules "[sets]
admins = [\"$netns_client_v4\", \"$netns_client_v6\"]"
"$portwall" block 7400/udp --from @admins --name admin-stream --offline --state-dir "$state" \
  --rules "$rules" >/dev/null
write_rules ""

if start_daemon; then
  fail "the daemon started with a CLI rule whose set is gone"
  stop_daemon
fi
cat "$work/daemon.log"
grep -qF "$state/state.jsonl:2:1: error: CLI rule 1 (drop 7400/udp from @admins (name admin-stream)): set @admins is not defined in the rule file ($rules)" "$work/daemon.log" &&
  pass "the start error names the state file line, the rule and the set" ||
  fail "the start error lacks the line, rule or set"
repair=$(grep '^  portwall delete ' "$work/daemon.log" || true)
[ "$repair" = "  portwall delete admin-stream --offline --state-dir $state --rules $rules" ] &&
  pass "the start error gives the delete command" ||
  fail "the start error gives no or another delete command: '$repair'"

listing=$("$portwall" list --offline --state-dir "$state" --rules "$rules" 2>&1) ||
  fail "list --offline failed on the broken state: $listing"
echo "$listing" | grep -q "error: set @admins is not defined in the rule file" &&
  pass "list --offline shows the rule that lacks its set" ||
  fail "list --offline does not mark the rule: $listing"

# Run the command exactly as printed, with this build in place of the
# installed binary.
read -r -a repair_words <<<"${repair#  portwall }"
"$portwall" "${repair_words[@]}" || fail "the printed delete command failed"
if start_daemon; then
  pass "the daemon starts after the printed delete command"
  stop_daemon
else
  fail "the daemon still does not start after the delete command"
  cat "$work/daemon.log" >&2
fi

# --- control group from the socket's peer groups -------------------------------
start_daemon --control-group staff || {
  cat "$work/daemon.log" >&2
  fail "the daemon did not start with --control-group staff"
  exit 1
}
for family in 4 6; do
  [ "$(netns_probe udp "$family" 7400)" = "udp 7400" ] ||
    fail "udp/IPv$family 7400 should pass before the block"
done

member() {
  setpriv --reuid 65534 --regid 65534 --groups "$group_gid" "$portwall" "$@" --socket "$socket"
}
outsider() {
  setpriv --reuid 65534 --regid 65534 --clear-groups "$portwall" "$@" --socket "$socket"
}

output=$(member block 7400/udp 2>&1) &&
  pass "a client with group staff ($group_gid) from setpriv may block: $output" ||
  fail "a client with group staff was rejected: $output"
for family in 4 6; do
  [ -z "$(netns_probe udp "$family" 7400)" ] &&
    pass "the member's block drops udp/IPv$family 7400" ||
    fail "udp/IPv$family 7400 still passes after the member's block"
done
output=$(member list 2>&1) &&
  echo "$output" | grep -q "drop .* 7400 .* cli " &&
  pass "a client with group staff may list" ||
  fail "a client with group staff could not list: $output"

expected="permission denied: uid 65534 (gid 65534, supplementary groups none) is neither root nor in the control group (gid $group_gid)"
for command in list "block 7401/udp" "delete 1"; do
  status=0
  # shellcheck disable=SC2086 # the command words split on purpose
  output=$(outsider $command 2>&1) || status=$?
  [ "$status" -eq 1 ] &&
    pass "a client without the group gets exit status 1 for $command" ||
    fail "a client without the group got exit status $status for $command"
  echo "$output" | grep -qF "$expected" &&
    pass "a client without the group is told why: $output" ||
    fail "a client without the group: unexpected output '$output'"
done
rules_now=$("$portwall" list --json --socket "$socket" |
  grep -c '"kind": "cli"' || true)
[ "$rules_now" -eq 1 ] && pass "rejected clients changed no rule" ||
  fail "there are $rules_now CLI rules after rejected changes, expected 1"

stop_daemon
if [ "$failures" -ne 0 ]; then
  echo "$failures checks failed" >&2
  exit 1
fi
echo "all control access checks passed"
