#!/usr/bin/env bash
# A 10 MB TCP transfer through `portwall run` arrives intact (same SHA-256)
# in packet mode and in flow mode, over IPv4 and IPv6, in two network
# namespaces this test creates and removes. veth hands TCP segments to the
# receiver's input hook unsegmented (GSO packets of up to 64 KiB), so in
# packet mode the daemon must judge packets larger than the MTU. The test
# checks that the rule counting the transfer saw an average packet above
# 1,500 bytes, which shows that GSO packets went through the queue whole.
#
# Usage: gso_test.sh PORTWALL_BINARY. Needs root; exits 77 (skipped)
# without it.
set -euo pipefail

portwall=${1:?usage: gso_test.sh PORTWALL_BINARY}
here=$(cd "$(dirname "$0")" && pwd)

# shellcheck source=testlib.sh
source "$here/testlib.sh"
testlib_begin "the GSO test needs root to create network namespaces" \
  ip iptables ip6tables socat ss timeout sha256sum

cat >"$work/rules.toml" <<'EOF'
version = 1

[policy]
input = "accept"

[[rule]]
name = "transfer"
action = "accept"
proto = "tcp"
dport = 7200

[[rule]]
name = "block-9001"
action = "drop"
dport = 9001
EOF

head -c 10000000 /dev/urandom >"$work/send.bin"
expected=$(sha256sum <"$work/send.bin" | cut -d' ' -f1)

transfer() { # MODE FAMILY
  local mode=$1 family=$2 listen connect actual
  if [ "$family" = 4 ]; then
    listen="TCP4-LISTEN:7200,bind=$netns_server_v4,reuseaddr"
    connect="TCP4:$netns_server_v4:7200"
  else
    listen="TCP6-LISTEN:7200,bind=[$netns_server_v6],reuseaddr"
    connect="TCP6:[$netns_server_v6]:7200"
  fi
  rm -f "$work/received.bin"
  ip netns exec "$netns_server" timeout 60 socat -u "$listen" \
    "OPEN:$work/received.bin,creat,trunc" &
  local server=$!
  netns_pids+=("$server")
  netns_wait_listening 7200 || fail "transfer server on port 7200 did not start"
  if ! ip netns exec "$netns_client" timeout 60 socat -u "OPEN:$work/send.bin" "$connect"; then
    fail "$mode mode, IPv$family: the client could not send the file"
  fi
  wait "$server" || fail "$mode mode, IPv$family: the transfer server failed"
  actual=$(sha256sum <"$work/received.bin" | cut -d' ' -f1)
  if [ "$actual" = "$expected" ]; then
    echo "ok: $mode mode, IPv$family: 10 MB arrived intact"
  else
    fail "$mode mode, IPv$family: received $(stat -c %s "$work/received.bin") bytes with" \
      "SHA-256 $actual, expected 10000000 bytes with $expected"
  fi
}

netns_setup "$(printf 'g%03x' $((RANDOM % 4096)))"

for mode in packet flow; do
  echo "== $mode mode"
  start_daemon --rules "$work/rules.toml" --mode "$mode" ||
    fail_with_log "portwall run --mode $mode did not start; its log:"
  transfer "$mode" 4
  transfer "$mode" 6
  stop_daemon
  counters=$(grep "rule transfer (accept):" "$work/daemon.log" || true)
  packets=$(sed -n 's/.* packets=\([0-9]*\).*/\1/p' <<<"$counters")
  bytes=$(sed -n 's/.* bytes=\([0-9]*\).*/\1/p' <<<"$counters")
  [ "${packets:-0}" -gt 0 ] || fail "$mode mode: rule 'transfer' counted no packets: $counters"
  if [ "$mode" = packet ] && [ "${packets:-0}" -gt 0 ]; then
    average=$((bytes / packets))
    if [ "$average" -gt 1500 ]; then
      echo "ok: packet mode judged $packets packets of $average bytes on average (GSO)"
    else
      fail "packet mode: average judged packet is $average bytes, so GSO packets were" \
        "segmented before the queue (or veth offloads are off)"
    fi
  fi
done

testlib_finish "all GSO checks passed"
