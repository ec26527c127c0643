#!/usr/bin/env python3
"""Timed UDP stream for the control tests.

send ADDRESS PORT SECONDS INTERVAL_MS: send datagrams "SEQ SEND_NS" until
SECONDS pass. receive ADDRESS PORT SECONDS: print "SEQ SEND_NS RECV_NS" for
every datagram received until SECONDS pass. session ADDRESS PORT SECONDS
INTERVAL_MS: open one TCP connection to an echo server, send lines
"SEQ SEND_NS" on it, and print "SEQ SEND_NS RECV_NS" for every line echoed. Times are CLOCK_REALTIME in
nanoseconds, so both ends and the test script (date +%s%N) share one clock.
"""
import socket
import sys
import time


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def send(address, port, seconds, interval_ms):
    sock = socket.socket(family_of(address), socket.SOCK_DGRAM)
    end = time.monotonic() + seconds
    sequence = 0
    while time.monotonic() < end:
        sequence += 1
        sock.sendto(f"{sequence} {time.time_ns()}".encode(), (address, port))
        time.sleep(interval_ms / 1000)


def receive(address, port, seconds):
    sock = socket.socket(family_of(address), socket.SOCK_DGRAM)
    sock.bind((address, port))
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(256)
        except socket.timeout:
            break
        print(f"{data.decode()} {time.time_ns()}", flush=True)


def session(address, port, seconds, interval_ms):
    sock = socket.create_connection((address, port), timeout=2)
    sock.setblocking(False)
    end = time.monotonic() + seconds
    sequence = 0
    pending = b""
    while time.monotonic() < end:
        sequence += 1
        try:
            sock.send(f"{sequence} {time.time_ns()}\n".encode())
        except BlockingIOError:
            pass  # the send buffer is full because the server stopped acknowledging
        time.sleep(interval_ms / 1000)
        try:
            pending += sock.recv(65536)
        except (BlockingIOError, ConnectionError):
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            print(f"{line.decode()} {time.time_ns()}", flush=True)


def main():
    mode, address, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    if mode == "send":
        send(address, port, seconds, float(sys.argv[5]))
    elif mode == "session":
        session(address, port, seconds, float(sys.argv[5]))
    else:
        receive(address, port, seconds)


if __name__ == "__main__":
    main()
