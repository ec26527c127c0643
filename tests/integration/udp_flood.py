#!/usr/bin/env python3
"""Send or count a bounded number of UDP datagrams, for the overload test.

send ADDRESS PORTS COUNT: send COUNT small datagrams as fast as possible,
cycling over the comma-separated PORTS, then exit.
count ADDRESS PORT SECONDS: count the datagrams that arrive on PORT until
SECONDS pass without one (waiting up to 30 s for the first), then print the
count and exit.
"""
import socket
import sys


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def send(address, ports, count):
    targets = [int(port) for port in ports.split(",")]
    with socket.socket(family_of(address), socket.SOCK_DGRAM) as sender:
        payload = b"x" * 32
        sent = 0
        for i in range(count):
            try:
                sender.sendto(payload, (address, targets[i % len(targets)]))
                sent += 1
            except OSError:
                # A full local queue (ENOBUFS) or an ICMP error from an
                # earlier datagram; the test only needs a bounded load.
                pass
    print(sent)


def count(address, port, quiet_seconds):
    with socket.socket(family_of(address), socket.SOCK_DGRAM) as receiver:
        # SO_RCVBUFFORCE (Linux, needs root): a buffer large enough that the
        # counter itself does not lose datagrams of a burst.
        receiver.setsockopt(socket.SOL_SOCKET, 33, 16 * 1024 * 1024)
        receiver.bind((address, port))
        receiver.settimeout(30)
        received = 0
        try:
            while True:
                receiver.recv(2048)
                received += 1
                receiver.settimeout(quiet_seconds)
        except socket.timeout:
            pass
    print(received, flush=True)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "count":
        count(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
