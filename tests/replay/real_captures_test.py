#!/usr/bin/env python3
"""Replay the real captures beside the source tree and check every count
against an independent count of the same packets made with tcpdump filters.

The captures live in ../shared/data/pcaps relative to the source root (CI
places shared/ beside the clone). Without them, or without tcpdump, the test
exits 77, which meson reports as skipped.

A rule and its tcpdump filter must mean the same thing, and the filters
differ from plain `tcp dst port 22` where libpcap's primitives do not:
  - portwall reads ports only from a complete, valid transport header, so each
    port filter also loads the header's last byte and checks its length fields
    (a BPF load past the captured bytes rejects the packet);
  - libpcap's port primitives look at the IPv6 next header only, while
    portwall walks extension headers, so the filters for IPv6 packets with a
    fragment or routing header spell the offsets out;
  - `vlan` moves the offsets of what follows it, so each capture's filters get
    one `vlan and` per stacked tag in front.
A rule's count excludes packets that an earlier rule's filter matches, since
the first matching rule decides.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

SKIP = 77

TCP_VALID = "(tcp[19] = tcp[19] and tcp[12] & 0xf0 >= 0x50)"
UDP_VALID = "(udp[7] = udp[7] and udp[4:2] >= 8)"

# Rule name -> tcpdump filter meaning the same, in the order of real-rules.toml.
RULE_FILTERS = [
    ("ssh", f"(tcp dst port 22 and {TCP_VALID})"),
    ("dns", f"(udp dst port 53 and {UDP_VALID})"),
    ("mysql-server", f"(tcp src port 3306 and {TCP_VALID})"),
    ("http", f"(tcp dst port 80 and {TCP_VALID})"),
    # TCP behind an IPv6 fragment header with offset 0: the header is 8 bytes
    # at offset 40, its offset field in the top 13 bits of bytes 42-43, and
    # the TCP destination port at 48 + 2.
    ("alt-http", f"((tcp dst port 8080 and {TCP_VALID}) or (ip6[6] = 44 and ip6[40] = 6 and "
                 "ip6[42:2] & 0xfff8 = 0 and ip6[50:2] = 8080 and ip6[48 + 19] = ip6[48 + 19]))"),
    # UDP behind an IPv6 routing header of (ip6[41] + 1) * 8 bytes.
    ("routed-udp", f"((udp dst port 5642 and {UDP_VALID}) or (ip6[6] = 43 and ip6[40] = 17 and "
                   "ip6[48 + ip6[41] * 8 + 2 : 2] = 5642))"),
    # `ip6 protochain` walks IPv6 extension headers as portwall does (MLD
    # messages, for one, follow a hop-by-hop header).
    ("icmp", "(icmp or ip6 protochain 58)"),
]
DROP_RULES = {"ssh", "dns", "mysql-server", "alt-http", "routed-udp", "icmp"}

# Captures with stacked VLAN tags need that many `vlan and` in front.
VLAN_TAGS = {"tcpdump-802.1ad-qinq.pcap": 2, "zeek-vlan-qinqinq.pcap": 3}
# Raw IP link types: every frame is an IP packet to portwall, so a frame
# whose version nibble is neither 4 nor 6 is malformed, not "not IP".
RAW_LINK = {"RAW", "IPV4", "IPV6"}

# Malformed reasons and the marks tcpdump prints for the same packets.
TCPDUMP_MARKS = {
    "truncated_transport": re.compile(r"\[\|tcp\]|\[\|udp\]|truncated-udp"),
    "bad_ipv4_header_length": re.compile(r"bad-hlen"),
}


class Failure(Exception):
    pass


def tcpdump_count(capture, expression):
    result = subprocess.run(["tcpdump", "--count", "-r", str(capture), expression],
                            capture_output=True, text=True, timeout=60)
    # libpcap's optimizer refuses a filter it proves can match nothing (a
    # `tcp` filter on a raw IPv6 link, say) instead of counting zero.
    if "expression rejects all packets" in result.stderr:
        return 0
    match = re.search(r"^(\d+) packets?$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or match is None:
        raise Failure(f"tcpdump failed on {capture.name} with {expression!r}: {result.stderr}")
    return int(match.group(1))


def tcpdump_lines(capture):
    result = subprocess.run(["tcpdump", "-nn", "-r", str(capture)], capture_output=True,
                            text=True, timeout=60)
    return result.stdout.splitlines()


def tcpdump_link_type(capture):
    result = subprocess.run(["tcpdump", "--count", "-r", str(capture)], capture_output=True,
                            text=True, timeout=60)
    match = re.search(r"link-type (\S+)", result.stderr)
    return match.group(1) if match else ""


def independent_counts(capture):
    """Count with tcpdump what portwall should report for `capture`."""
    prefix = "vlan and " * VLAN_TAGS.get(capture.name, 0)
    total = tcpdump_count(capture, "")
    ip = tcpdump_count(capture, prefix + "(ip or ip6)")
    raw = tcpdump_link_type(capture) in RAW_LINK

    hits = {}
    earlier = []
    for name, expression in RULE_FILTERS:
        exclusive = expression if not earlier else f"{expression} and not ({' or '.join(earlier)})"
        hits[name] = tcpdump_count(capture, f"{prefix}({exclusive})")
        earlier.append(expression)

    lines = tcpdump_lines(capture)
    malformed = {reason: sum(1 for line in lines if mark.search(line))
                 for reason, mark in TCPDUMP_MARKS.items()}
    if raw:
        malformed["bad_ip_version"] = total - ip
        ip = total
    dropped = sum(count for name, count in hits.items() if name in DROP_RULES)
    return {"packets": total, "not_ip": total - ip, "dropped": dropped,
            "accepted": ip - dropped, "hits": hits, "malformed": malformed}


def check_capture(portwall, rules, capture):
    result = subprocess.run([portwall, "replay", "--rules", str(rules), "--json", str(capture)],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        return [f"{capture.name}: exit status {result.returncode}: {result.stderr}"]
    summary = json.loads(result.stdout)
    expected = independent_counts(capture)

    problems = []

    def compare(description, actual, expected_count):
        if actual != expected_count:
            problems.append(f"{capture.name}: {description}: portwall {actual}, "
                            f"tcpdump {expected_count}")

    hits = " ".join(f"{name}={count}" for name, count in expected["hits"].items() if count)
    malformed = " ".join(f"{reason}={count}" for reason, count in expected["malformed"].items()
                         if count)
    print(f"{capture.name}: tcpdump counts packets={expected['packets']} "
          f"not_ip={expected['not_ip']} accepted={expected['accepted']} "
          f"dropped={expected['dropped']} {hits} {malformed}".rstrip())
    for key in ("packets", "not_ip", "accepted", "dropped"):
        compare(key, summary[key], expected[key])
    for rule in summary["rules"]:
        compare(f"hits of rule {rule['name']}", rule["hits"], expected["hits"][rule["name"]])
    for reason, count in expected["malformed"].items():
        compare(f"malformed {reason}", summary["malformed"][reason], count)
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--portwall", required=True)
    parser.add_argument("--source-root", required=True)
    args = parser.parse_args()

    pcaps = Path(args.source_root).resolve().parent / "shared" / "data" / "pcaps"
    if not pcaps.is_dir():
        print(f"SKIP: {pcaps} is missing; the real-capture checks need the shared data "
              "beside the source tree", file=sys.stderr)
        return SKIP
    if shutil.which("tcpdump") is None:
        print("SKIP: tcpdump is not installed; run tools/install-deps", file=sys.stderr)
        return SKIP

    portwall = str(Path(args.portwall).resolve())
    rules = Path(__file__).resolve().parent / "real-rules.toml"
    captures = sorted(p for p in pcaps.iterdir() if p.suffix in (".pcap", ".pcapng"))
    problems = []
    for capture in captures:
        try:
            problems += check_capture(portwall, rules, capture)
        except Failure as failure:
            problems.append(str(failure))
    for problem in problems:
        print("FAIL", problem, file=sys.stderr)
    print(f"checked {len(captures)} captures, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
