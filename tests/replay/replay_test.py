#!/usr/bin/env python3
"""End-to-end tests of `portwall replay` on captures written by write-captures.

Each case runs the real portwall binary on captures that write_captures.cpp
makes with libpcap, under tests/replay/rules.toml, and checks counts, exit
statuses and messages. Run one case: replay_test.py --portwall P --writer W
--source DIR --work DIR CASE.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

# Counts of every capture that carries the eight common packets (four IPv4,
# four IPv6), and of ethernet.pcap, which adds ten more. Rules in file order:
# ssh, dns, web, ping; the policy drops.
COMMON = {"packets": 8, "accepted": 5, "dropped": 3, "not_ip": 0, "policy_hits": 1,
          "rules": [2, 2, 1, 2], "malformed": {}}
EXPECTED = {
    "ethernet.pcap": {"packets": 18, "accepted": 6, "dropped": 11, "not_ip": 1,
                      "policy_hits": 7, "rules": [4, 2, 2, 2],
                      "malformed": {"truncated_link": 1, "bad_ipv4_header_length": 1,
                                    "truncated_transport": 1, "bad_udp_length": 1}},
    "vlan.pcap": COMMON,
    "qinq.pcap": COMMON,
    "sll.pcap": COMMON,
    "sll2.pcap": COMMON,
    "raw.pcap": COMMON,
    "null.pcap": COMMON,
    "loop.pcap": COMMON,
    "ipv4.pcap": {"packets": 4, "accepted": 3, "dropped": 1, "not_ip": 0, "policy_hits": 0,
                  "rules": [1, 1, 1, 1], "malformed": {}},
    "ipv6.pcap": {"packets": 4, "accepted": 2, "dropped": 2, "not_ip": 0, "policy_hits": 1,
                  "rules": [1, 1, 0, 1], "malformed": {}},
}
RULE_NAMES = ["ssh", "dns", "web", "ping"]


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def check_equal(actual, expected, description):
    check(actual == expected, f"{description}: expected {expected!r}, actual {actual!r}")


def check_contains(text, expected, where):
    check(expected in text, f"missing {expected!r} in {where}:\n{text}")


class Context:
    def __init__(self, args):
        # Meson passes paths relative to the build directory; the cases run
        # portwall inside the work directory.
        self.portwall = str(Path(args.portwall).resolve())
        self.source = Path(args.source)
        self.work = Path(args.work) / args.case
        self.rules = self.source / "rules.toml"
        if self.work.exists():
            shutil.rmtree(self.work)
        subprocess.run([str(Path(args.writer).resolve()), str(self.work)], check=True)

    def replay(self, *arguments, rules=None):
        command = [self.portwall, "replay", "--rules", str(rules or self.rules), *arguments]
        return subprocess.run(command, cwd=self.work, capture_output=True, text=True,
                              timeout=60)

    def replay_json(self, *arguments, expected_status=0):
        result = self.replay("--json", *arguments)
        check_equal(result.returncode, expected_status,
                    f"exit status of replay {' '.join(arguments)} (stderr: {result.stderr})")
        return json.loads(result.stdout), result


def check_counts(summary, expected, capture):
    for key in ("packets", "accepted", "dropped", "not_ip", "policy_hits"):
        check_equal(summary[key], expected[key], f"{capture}: {key}")
    check_equal([rule["name"] for rule in summary["rules"]], RULE_NAMES, f"{capture}: rule names")
    check_equal([rule["hits"] for rule in summary["rules"]], expected["rules"],
                f"{capture}: rule hits")
    nonzero = {name: count for name, count in summary["malformed"].items() if count}
    check_equal(nonzero, expected["malformed"], f"{capture}: malformed by reason")
    check_equal(summary["malformed_total"], sum(expected["malformed"].values()),
                f"{capture}: malformed_total")


def case_link_types(context):
    for capture, expected in EXPECTED.items():
        summary, _ = context.replay_json(capture)
        check_counts(summary, expected, capture)
        check_equal(summary["captures"][0]["error"], None, f"{capture}: capture error")


def case_json_keys(context):
    summary, _ = context.replay_json("vlan.pcap")
    required = ["packets", "accepted", "dropped", "not_ip", "policy_hits", "rules"]
    check_equal(list(summary)[:len(required)], required, "first JSON keys")
    for rule in summary["rules"]:
        check_equal(sorted(rule), ["hits", "name"], "keys of a rule entry")


def case_json_escaping(context):
    odd_name = 'quote"back\\slash\ttab.pcap'
    shutil.copy(context.work / "vlan.pcap", context.work / odd_name)
    summary, _ = context.replay_json(odd_name)
    check_equal(summary["captures"][0]["path"], odd_name, "path in JSON")


def case_multiple_captures(context):
    summary, _ = context.replay_json("ethernet.pcap", "ipv6.pcap")
    check_equal(summary["packets"], 22, "packets over two captures")
    check_equal([c["packets"] for c in summary["captures"]], [18, 4], "packets per capture")
    result = context.replay("--packets", "ethernet.pcap", "ipv6.pcap")
    check_equal(result.returncode, 0, "exit status")
    lines = result.stdout.splitlines()
    check("ipv6.pcap:1 ipv6 tcp [2001:db8::1]:40000 -> [2001:db8::2]:22 drop rule=ssh" in lines,
          "packet indexes restart at 1 in the second capture:\n" + result.stdout)


def case_packet_lines(context):
    result = context.replay("--packets", "ethernet.pcap")
    check_equal(result.returncode, 0, "exit status")
    lines = result.stdout.splitlines()
    expected_lines = [
        "ethernet.pcap:1 ipv4 tcp 198.18.0.1:40000 -> 198.18.0.2:22 drop rule=ssh",
        "ethernet.pcap:4 ipv4 icmp 198.18.0.1 -> 198.18.0.2 accept rule=ping "
        "ports=no_ports_in_protocol",
        "ethernet.pcap:7 ipv6 icmpv6 2001:db8::1 -> 2001:db8::2 accept rule=ping "
        "ports=no_ports_in_protocol",
        "ethernet.pcap:8 ipv6 tcp [2001:db8::1]:40003 -> [2001:db8::2]:443 drop policy",
        "ethernet.pcap:9 not_ip",
        "ethernet.pcap:11 ipv4 tcp 198.18.0.1 -> 198.18.0.2 drop policy ports=later_fragment "
        "fragment",
        "ethernet.pcap:13 ipv6 udp 2001:db8::1 -> 2001:db8::2 drop policy ports=later_fragment "
        "fragment",
        "ethernet.pcap:14 malformed=bad_ipv4_header_length drop policy",
        "ethernet.pcap:16 ipv6 udp 2001:db8::1 -> 2001:db8::2 malformed=bad_udp_length drop "
        "policy",
        "ethernet.pcap:17 malformed=truncated_link drop policy",
    ]
    for line in expected_lines:
        check(line in lines, f"missing packet line {line!r} in:\n{result.stdout}")


def case_text_summary(context):
    result = context.replay("ethernet.pcap")
    check_equal(result.returncode, 0, "exit status")
    lines = [line.split() for line in result.stdout.splitlines()]
    for words in (["packets", "read", "18", "from", "1", "capture"], ["accepted", "6"],
                  ["dropped", "11"], ["not", "IP", "1"], ["ssh", "drop", "4"],
                  ["dns", "accept", "2"], ["policy", "drop", "7"], ["truncated_link", "1"]):
        check(words in lines, f"missing summary line {' '.join(words)!r} in:\n{result.stdout}")


def case_expect_match(context):
    summary, _ = context.replay_json("--expect", str(context.source / "ethernet.expect"),
                                     "ethernet.pcap")
    check_equal(summary["expect_differences"], [], "differences")


def case_expect_mismatch(context):
    expect = str(context.source / "ethernet-wrong.expect")
    summary, result = context.replay_json("--expect", expect, "ethernet.pcap", expected_status=1)
    differences = [(d["index"], d["expected"], d["actual"]) for d in summary["expect_differences"]]
    check_equal(differences, [(1, "accept", "drop ssh"), (5, "drop web", "drop ssh"),
                              (9, "drop", "not_ip"),
                              (19, "accept", "missing (the capture has 18 packets)")],
                "differences")
    expected_text = f"ethernet.pcap:5: expected drop web, actual drop ssh ({expect}:4)"
    check_contains(result.stderr, expected_text, "stderr")


def case_expect_errors(context):
    bad = context.work / "bad.expect"
    bad.write_text("capture ethernet.pcap\n1 reject\n2-1 drop\nx accept\n3 not_ip ssh\n"
                   "4 drop #0\n5 drop ssh extra\n")
    result = context.replay("--expect", str(bad), "ethernet.pcap")
    check_equal(result.returncode, 2, "exit status")
    for expected_text in (f"{bad}:2:3: error: invalid verdict 'reject'",
                          f"{bad}:3:1: error: invalid range '2-1'",
                          f"{bad}:4:1: error: invalid packet index 'x'",
                          f"{bad}:5:10: error: not_ip takes no rule",
                          f"{bad}:6:8: error: invalid rule '#0'",
                          f"{bad}:7:12: error: unexpected 'extra'"):
        check_contains(result.stderr, expected_text, "stderr")

    # A path that checks nothing must not pass: a directory, an empty file.
    directory = context.work / "expect-directory"
    directory.mkdir(exist_ok=True)
    empty = context.work / "empty.expect"
    empty.write_text("# only a comment\n")
    for path, reason in ((directory, "not a regular file"),
                         (empty, "it holds no expectations"),
                         (context.work / "missing.expect", "No such file or directory")):
        result = context.replay("--expect", str(path), "ethernet.pcap")
        check_equal(result.returncode, 2, f"exit status for {path.name}")
        check_contains(result.stderr, f"{path}: error: failed to read the expect file: {reason}",
                       "stderr")

    overlap = context.work / "overlap.expect"
    overlap.write_text("1-3 drop\n3 drop\ncapture nowhere.pcap\n1 drop\n")
    result = context.replay("--expect", str(overlap), "ethernet.pcap")
    check_equal(result.returncode, 2, "exit status for overlap")
    for expected_text in (f"{overlap}:2:1: error: packet 3 of ethernet.pcap already has an "
                          "expectation on line 1",
                          f"{overlap}:4:1: error: capture 'nowhere.pcap' matches none"):
        check_contains(result.stderr, expected_text, "stderr")

    result = context.replay("--expect", str(context.source / "ethernet.expect"),
                            "ethernet.pcap", "vlan.pcap")
    check_equal(result.returncode, 0, "a capture line selects one of several captures")


def case_truncated_capture(context):
    summary, result = context.replay_json("truncated.pcap", expected_status=2)
    check_equal(summary["packets"], 2, "packets read before the cut")
    check_equal([r["hits"] for r in summary["rules"]], [1, 1, 0, 0], "rule hits")
    check_equal(summary["captures"][0]["failed_index"], 3, "failed_index")
    expected_text = "portwall replay: error: truncated.pcap: packet 3: truncated dump file"
    check_contains(result.stderr, expected_text, "stderr")


def case_mixed_pcapng(context):
    summary, result = context.replay_json("mixed.pcapng", expected_status=2)
    check_equal(summary["packets"], 1, "packets before the second interface")
    check_equal(summary["captures"][0]["failed_index"], 2, "failed_index")
    expected_text = "mixed.pcapng: packet 2: an interface has a type 101 different"
    check_contains(result.stderr, expected_text, "stderr")

    summary, result = context.replay_json("snap-length.pcapng", expected_status=2)
    check_equal(summary["packets"], 0, "packets before the second interface")
    check_equal(summary["captures"][0]["failed_index"], 1, "failed_index")
    expected_text = "snap-length.pcapng: packet 1: an interface has a snapshot length 1000"
    check_contains(result.stderr, expected_text, "stderr")


def case_unsupported_link_type(context):
    summary, result = context.replay_json("wifi.pcap", "vlan.pcap", expected_status=2)
    check_equal(summary["packets"], 8, "packets of the readable capture")
    expected_text = "wifi.pcap: unsupported link type DLT 105 (IEEE802_11)"
    check_contains(result.stderr, expected_text, "stderr")
    result = context.replay("--json", "no-such.pcap")
    check_equal(result.returncode, 2, "exit status for a missing capture")
    check("no-such.pcap: failed to open the capture" in result.stderr, result.stderr)


def case_usage_errors(context):
    result = context.replay("--json", "--packets", "vlan.pcap")
    check_equal(result.returncode, 2, "exit status of --json with --packets")
    bad_rules = context.work / "bad.toml"
    bad_rules.write_text('[policy]\ninput = "maybe"\n')
    result = context.replay("vlan.pcap", rules=bad_rules)
    check_equal(result.returncode, 2, "exit status for an invalid rule file")
    check(f"{bad_rules}:2:" in result.stderr, f"no position in stderr:\n{result.stderr}")
    check_equal(result.stdout, "", "stdout for an invalid rule file")


CASES = {name[len("case_"):].replace("_", "-"): function
         for name, function in globals().items() if name.startswith("case_")}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--portwall", required=True)
    parser.add_argument("--writer", required=True)
    parser.add_argument("--source", required=True, help="tests/replay in the source tree")
    parser.add_argument("--work", required=True, help="directory for generated captures")
    parser.add_argument("case", choices=sorted(CASES))
    args = parser.parse_args()
    try:
        CASES[args.case](Context(args))
    except Failure as failure:
        print(f"FAIL {args.case}: {failure}", file=sys.stderr)
        return 1
    print(f"ok {args.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
