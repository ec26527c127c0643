# shellcheck shell=bash
# Shared parts of the namespace tests in this folder: the skip checks, the
# failure counter, the cleanup on every exit, starting and stopping
# `portwall run` in the server namespace, probes that expect a reply or none,
# and slow TCP streams. Source it after setting $portwall and $here (this
# folder); it sources netns.sh and defines functions and variables only.
#
# A test calls testlib_begin first and testlib_finish last. In between,
# `fail MESSAGE` counts a failed check and lets the test go on.

: "${here:?set here to the folder of testlib.sh before sourcing it}"
: "${portwall:?set portwall to the portwall binary before sourcing testlib.sh}"

# shellcheck source=netns.sh
source "$here/netns.sh"

# Set by testlib_begin: a private folder that contains rule files, the daemon
# log, the control socket and the state directory.
work=
daemon_pid=
# Client side of every stream from start_stream, stopped by stop_streams.
stream_pids=()
failures=0

skip() {
  echo "SKIPPED: $*" >&2
  exit 77
}

# Skip (exit 77) unless running as root with every listed tool installed,
# then create $work and install the cleanup. $1 is the reason root is
# needed, printed with the skip.
testlib_begin() { # ROOT_REASON TOOL...
  local root_reason=$1 tool
  shift
  [ "$(id -u)" -eq 0 ] || skip "$root_reason"
  for tool in "$@"; do
    command -v "$tool" >/dev/null || skip "$tool is not installed; run tools/install-deps"
  done
  work=$(mktemp -d)
  trap testlib_cleanup EXIT
  # Ctrl-C and SIGTERM leave through the EXIT trap, so they clean up too.
  trap 'exit 130' INT TERM
}

# Stop the daemon, the streams and the servers, and remove the namespaces
# and $work. The daemon may be paused by SIGSTOP, so it gets SIGCONT before
# SIGTERM.
testlib_cleanup() {
  local pid
  if [ -n "$daemon_pid" ]; then
    kill -CONT "$daemon_pid" 2>/dev/null || true
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  for pid in "${stream_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  netns_cleanup
  if [ -n "$work" ]; then
    rm -rf "$work"
  fi
}

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# Count a failed check and print the daemon log below it. Returns 1, so
# that under `set -e` a failed start or a missing log line ends the test.
fail_with_log() { # MESSAGE
  fail "$1"
  cat "$work/daemon.log" >&2
  return 1
}

# Print the summary and exit 1 if any check failed, else print $1.
testlib_finish() { # PASS_MESSAGE
  if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  echo "$1"
}

# Start `portwall run` with the given options in the server namespace,
# with a private control socket and state directory, so that a test meets
# neither another daemon's lock nor the host's /var/lib/portwall. The log
# goes to $work/daemon.log, emptied first. Returns 1 without counting a
# failure when the daemon exits or does not log "info: started:" within
# 10 s, because some tests expect a start to fail.
start_daemon() { # RUN_OPTION...
  : >"$work/daemon.log"
  ip netns exec "$netns_server" "$portwall" run "$@" \
    --socket "$work/portwall.sock" --state-dir "$work/state" 2>"$work/daemon.log" &
  daemon_pid=$!
  for _ in $(seq 100); do
    grep -q "info: started:" "$work/daemon.log" && return 0
    kill -0 "$daemon_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Stop the daemon with SIGTERM and check that it exits with status 0. $1
# (default: after SIGTERM) ends the failure message.
# shellcheck disable=SC2120 # most callers take the default of $1
stop_daemon() { # [WHEN]
  local when=${1:-after SIGTERM} status=0
  kill -TERM "$daemon_pid"
  wait "$daemon_pid" || status=$?
  daemon_pid=
  [ "$status" -eq 0 ] || fail "daemon exited with status $status $when"
}

# Wait up to 10 s for the COUNT-th line of the daemon log that matches
# PATTERN (a grep pattern). Gives up early if the daemon exits.
wait_log() { # PATTERN [COUNT]
  local pattern=$1 count=${2:-1}
  for _ in $(seq 100); do
    if [ "$(grep -c -- "$pattern" "$work/daemon.log" || true)" -ge "$count" ]; then
      return 0
    fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  fail_with_log "daemon log has no line matching '$pattern' (expected $count); the log:"
}

# Check that no NFQUEUE rule or PORTWALL chain is left in the server
# namespace's iptables and ip6tables rules. $1 ends the failure message.
expect_no_hooks() { # WHEN
  local hooks
  hooks=$(ip netns exec "$netns_server" iptables -S; ip netns exec "$netns_server" ip6tables -S)
  if grep -qi "NFQUEUE\|PORTWALL" <<<"$hooks"; then
    fail "hook rules left behind $1:"
    echo "$hooks" >&2
  fi
}

# Expect traffic (PROTOCOL tcp or udp, FAMILY 4 or 6, PORT) to get the
# server's reply. It is tried three times, so that a lost datagram on a
# loaded machine does not fail the test. CONTEXT, when given, goes into the
# failure message.
expect_pass() { # PROTOCOL FAMILY PORT [CONTEXT]
  local answer attempt
  for attempt in 1 2 3; do
    answer=$(netns_probe "$1" "$2" "$3")
    if [ "$answer" = "$1 $3" ]; then
      echo "ok: $1/IPv$2 port $3 passes"
      return 0
    fi
    echo "note: $1/IPv$2 port $3 got no reply (attempt $attempt)" >&2
  done
  fail "$1/IPv$2 to port $3 should pass but got no reply${4:+ ($4)}"
}

# Expect traffic to get no reply. One probe is enough, because any reply
# fails the check.
expect_blocked() { # PROTOCOL FAMILY PORT [CONTEXT]
  local answer
  answer=$(netns_probe "$1" "$2" "$3")
  if [ -n "$answer" ]; then
    fail "$1/IPv$2 to port $3 should be blocked but got '$answer'${4:+ ($4)}"
  else
    echo "ok: $1/IPv$2 port $3 blocked"
  fi
}

# Start a slow TCP stream (about 100 KiB/s for at most 60 s) from the client
# to PORT over FAMILY (4 or 6). The server appends what arrives to
# $work/stream-FAMILY-PORT.bin, so stream_growth can tell whether the
# stream still flows.
start_stream() { # FAMILY PORT
  local family=$1 port=$2 listen connect
  if [ "$family" = 4 ]; then
    listen="TCP4-LISTEN:$port,bind=$netns_server_v4,reuseaddr"
    connect="TCP4:$netns_server_v4:$port"
  else
    listen="TCP6-LISTEN:$port,bind=[$netns_server_v6],reuseaddr"
    connect="TCP6:[$netns_server_v6]:$port"
  fi
  rm -f "$work/stream-$family-$port.bin"
  ip netns exec "$netns_server" timeout 60 socat -u "$listen" \
    "OPEN:$work/stream-$family-$port.bin,creat,append" &
  netns_pids+=($!)
  netns_wait_listening "$port" || fail "stream server on port $port did not start"
  # ss shows the port as listening once either family's server is up, so
  # this one may not be listening yet.
  sleep 0.2
  (
    for _ in $(seq 6000); do
      head -c 1024 /dev/zero
      sleep 0.01
    done
  ) | ip netns exec "$netns_client" timeout 60 socat -u - "$connect" &
  stream_pids+=($!)
}

stream_size() { # FAMILY-PORT
  stat -c %s "$work/stream-$1.bin" 2>/dev/null || echo 0
}

# Print, separated by spaces, how many bytes each listed stream (given as
# FAMILY-PORT) delivered during one second.
stream_growth() { # FAMILY-PORT...
  local stream sizes_before=() deltas=() index=0
  for stream in "$@"; do
    sizes_before+=("$(stream_size "$stream")")
  done
  sleep 1
  for stream in "$@"; do
    deltas+=("$(($(stream_size "$stream") - sizes_before[index]))")
    index=$((index + 1))
  done
  echo "${deltas[*]}"
}

# Stop the client side of every stream. A server ends when its connection
# closes, or after its 60 s timeout.
stop_streams() {
  local pid
  for pid in "${stream_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  stream_pids=()
}
