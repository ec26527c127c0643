# Shared helpers for the integration tests and the demo: a client and a
# server network namespace joined by a veth pair, TCP and UDP echo servers in
# the server namespace, and probes from the client. Source this file; it
# defines functions and variables only.
#
# Addresses: 198.18.0.1/24 and 2001:db8::1/64 (client), 198.18.0.2/24 and
# 2001:db8::2/64 (server), from the ranges reserved for benchmarks and
# documentation, inside namespaces this script creates and removes.

netns_client_v4=198.18.0.1
netns_server_v4=198.18.0.2
netns_client_v6=2001:db8::1
netns_server_v6=2001:db8::2

# Set by netns_setup: the namespace names, unique per run.
netns_client=
netns_server=
netns_pids=()

# Create both namespaces and the veth pair between them. $1 is a short tag
# that makes the names unique (interface names may have at most 15 bytes).
netns_setup() {
  local tag=$1
  netns_client=pw-c-$tag
  netns_server=pw-s-$tag
  ip netns add "$netns_client"
  ip netns add "$netns_server"
  ip link add "pwc$tag" netns "$netns_client" type veth peer name "pws$tag" netns "$netns_server"

  ip -n "$netns_client" link set lo up
  ip -n "$netns_server" link set lo up
  ip -n "$netns_client" link set "pwc$tag" up
  ip -n "$netns_server" link set "pws$tag" up
  ip -n "$netns_client" addr add "$netns_client_v4/24" dev "pwc$tag"
  ip -n "$netns_server" addr add "$netns_server_v4/24" dev "pws$tag"
  # nodad: the addresses are usable at once instead of after duplicate
  # address detection (about a second).
  ip -n "$netns_client" addr add "$netns_client_v6/64" dev "pwc$tag" nodad
  ip -n "$netns_server" addr add "$netns_server_v6/64" dev "pws$tag" nodad
}

# Kill the processes this script started (by their own pids) and remove the
# namespaces. Safe to call more than once and after a partial setup.
netns_cleanup() {
  local pid
  for pid in "${netns_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${netns_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  netns_pids=()
  [ -n "$netns_client" ] && ip netns del "$netns_client" 2>/dev/null
  [ -n "$netns_server" ] && ip netns del "$netns_server" 2>/dev/null
  return 0
}

# Start TCP and UDP servers for IPv4 and IPv6 on port $1 in the server
# namespace. Each replies "tcp PORT" or "udp PORT" to every connection or
# datagram.
netns_serve() {
  local port=$1
  ip netns exec "$netns_server" socat "TCP4-LISTEN:$port,bind=$netns_server_v4,fork,reuseaddr" \
    "SYSTEM:echo tcp $port" &
  netns_pids+=($!)
  ip netns exec "$netns_server" socat "TCP6-LISTEN:$port,bind=[$netns_server_v6],fork,reuseaddr" \
    "SYSTEM:echo tcp $port" &
  netns_pids+=($!)
  # The reply waits until the datagram is read, so that socat never writes
  # it into a pipe whose reader has already exited (EPIPE, then no reply).
  ip netns exec "$netns_server" socat "UDP4-RECVFROM:$port,bind=$netns_server_v4,fork" \
    "SYSTEM:read -r line; echo udp $port" &
  netns_pids+=($!)
  ip netns exec "$netns_server" socat "UDP6-RECVFROM:$port,bind=[$netns_server_v6],fork" \
    "SYSTEM:read -r line; echo udp $port" &
  netns_pids+=($!)
}

# Probe the server from the client. $1: tcp or udp, $2: 4 or 6, $3: port.
# Prints the server's reply, or nothing when the traffic did not get
# through within about two seconds.
netns_probe() {
  local protocol=$1 family=$2 port=$3 address
  if [ "$family" = 4 ]; then
    address=$netns_server_v4
  else
    address="[$netns_server_v6]"
  fi
  if [ "$protocol" = tcp ]; then
    ip netns exec "$netns_client" timeout 5 \
      socat -T2 - "TCP$family:$address:$port,connect-timeout=2" </dev/null 2>/dev/null || true
  else
    echo ping | ip netns exec "$netns_client" timeout 5 \
      socat -T2 - "UDP$family:$address:$port" 2>/dev/null || true
  fi
}

# Wait until the listeners of port $1 accept connections (up to 5 s), so a
# probe never races the servers' start. Runs inside the server namespace,
# where no hook is installed yet for loopback traffic.
netns_wait_listening() {
  local port=$1 i
  for i in $(seq 50); do
    if ip netns exec "$netns_server" ss -ltn | grep -q ":$port "; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}
