// Unit tests of the replay library: link type mapping, frame judgement with
// byte-array fixtures, expect file parsing and checking, per-packet lines.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "replay/expect.hpp"
#include "replay/replay.hpp"
#include "replay/report.hpp"

#include <pcap/pcap.h>

#include <cstdint>
#include <string>
#include <vector>

using namespace portwall;
using namespace portwall::replay;

namespace {

using Bytes = std::vector<std::uint8_t>;

// Ethernet, IPv4 198.18.0.1 -> 198.18.0.2, TCP 40000 -> 22, SYN.
const Bytes ethernet_ipv4_ssh = {
    0x02, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00,
    0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
    0x9c, 0x40, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0,
};

// Ethernet, IPv6 2001:db8::1 -> 2001:db8::2, TCP 40000 -> 22, SYN.
const Bytes ethernet_ipv6_ssh = {
    0x02, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd,
    0x60, 0, 0, 0, 0, 20, 6, 64,
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    0x9c, 0x40, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0,
};

// Ethernet carrying ARP (ethertype 0x0806).
const Bytes ethernet_arp = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06,
    0, 1, 0x08, 0x00, 6, 4, 0, 1,
};

RuleTable ssh_table()
{
    RuleTable table;
    table.policy = Action::accept;
    Rule ssh;
    ssh.name = "ssh";
    ssh.action = Action::drop;
    ssh.any_protocol = false;
    ssh.protocols.set(ipproto::tcp);
    ssh.dport.push_back({22, 22});
    table.rules.push_back(ssh);
    return table;
}

PacketOutcome judge(const Bytes& frame, const Ruleset& ruleset)
{
    return judge_frame(LinkType::ethernet, frame, static_cast<std::uint32_t>(frame.size()),
                       ruleset);
}

} // namespace

TEST_CASE("replay: DLT values map to link types")
{
    CHECK(link_type_from_dlt(DLT_EN10MB) == LinkType::ethernet);
    CHECK(link_type_from_dlt(DLT_RAW) == LinkType::raw);
    CHECK(link_type_from_dlt(101) == LinkType::raw);
    CHECK(link_type_from_dlt(DLT_IPV4) == LinkType::ipv4);
    CHECK(link_type_from_dlt(DLT_IPV6) == LinkType::ipv6);
    CHECK(link_type_from_dlt(DLT_NULL) == LinkType::null_bsd);
    CHECK(link_type_from_dlt(DLT_LOOP) == LinkType::loop);
    CHECK(link_type_from_dlt(DLT_LINUX_SLL) == LinkType::linux_sll);
    CHECK(link_type_from_dlt(DLT_LINUX_SLL2) == LinkType::linux_sll2);
    CHECK_FALSE(link_type_from_dlt(DLT_IEEE802_11).has_value());
}

TEST_CASE("replay: frames get verdicts for IPv4 and IPv6")
{
    const Ruleset ruleset(ssh_table(), ClassifierKind::compiled, 1);
    for (const Bytes* frame : {&ethernet_ipv4_ssh, &ethernet_ipv6_ssh}) {
        const PacketOutcome outcome = judge(*frame, ruleset);
        CHECK(outcome.is_ip);
        CHECK(outcome.packet.ok());
        CHECK(outcome.match.rule == 0);
        CHECK(outcome.match.action == Action::drop);
    }
    CHECK(ruleset.rule_counter(0).packets.load() == 2);
}

TEST_CASE("replay: non-IP frames get no verdict")
{
    const Ruleset ruleset(ssh_table(), ClassifierKind::compiled, 1);
    const PacketOutcome outcome = judge(ethernet_arp, ruleset);
    CHECK_FALSE(outcome.is_ip);
    CHECK(ruleset.policy_counter().packets.load() == 0);

    Totals totals;
    totals.add(outcome);
    CHECK(totals.packets == 1);
    CHECK(totals.not_ip == 1);
    CHECK(totals.accepted + totals.dropped == 0);
}

TEST_CASE("replay: short link header is malformed and gets the policy")
{
    const Ruleset ruleset(ssh_table(), ClassifierKind::compiled, 1);
    const Bytes short_frame(ethernet_ipv4_ssh.begin(), ethernet_ipv4_ssh.begin() + 10);
    const PacketOutcome outcome = judge(short_frame, ruleset);
    CHECK(outcome.is_ip);
    CHECK(outcome.packet.status == DecodeStatus::truncated_link);
    CHECK(outcome.match.is_policy());

    Totals totals;
    totals.add(outcome);
    CHECK(totals.accepted == 1);
    CHECK(totals.malformed[static_cast<std::size_t>(DecodeStatus::truncated_link)] == 1);
    CHECK(totals.malformed_total() == 1);
}

TEST_CASE("replay: snapped frame keeps its wire length")
{
    // Cut inside the TCP header: the IP lengths place the header there, so
    // the ports are not captured, which is not malformed.
    const Ruleset ruleset(ssh_table(), ClassifierKind::compiled, 1);
    for (const Bytes* frame : {&ethernet_ipv4_ssh, &ethernet_ipv6_ssh}) {
        const Bytes snapped(frame->begin(), frame->end() - 18);
        const PacketOutcome outcome = judge_frame(
            LinkType::ethernet, snapped, static_cast<std::uint32_t>(frame->size()), ruleset);
        CHECK(outcome.packet.ok());
        CHECK(outcome.packet.ports == PortsAbsence::not_captured);
        CHECK(outcome.match.is_policy());
    }
}

TEST_CASE("replay: packet lines name addresses, ports and rule")
{
    const Ruleset ruleset(ssh_table(), ClassifierKind::compiled, 1);
    PacketOutcome v4 = judge(ethernet_ipv4_ssh, ruleset);
    v4.index = 3;
    CHECK(format_packet_line("a.pcap", v4, ruleset.table()) ==
          "a.pcap:3 ipv4 tcp 198.18.0.1:40000 -> 198.18.0.2:22 drop rule=ssh");
    PacketOutcome v6 = judge(ethernet_ipv6_ssh, ruleset);
    v6.index = 4;
    CHECK(format_packet_line("a.pcap", v6, ruleset.table()) ==
          "a.pcap:4 ipv6 tcp [2001:db8::1]:40000 -> [2001:db8::2]:22 drop rule=ssh");
    PacketOutcome arp = judge(ethernet_arp, ruleset);
    arp.index = 5;
    CHECK(format_packet_line("a.pcap", arp, ruleset.table()) == "a.pcap:5 not_ip");
}

TEST_CASE("expect: entries, ranges, rules and comments parse")
{
    const ExpectParseResult parsed = parse_expectations(
        "# heading\n"
        "capture web.pcap\n"
        "1 accept\n"
        "2-5 drop ssh   # comment\n"
        "6 drop #3\n"
        "  \n"
        "7 not_ip # ARP\n",
        "t.expect");
    REQUIRE(parsed.errors.empty());
    REQUIRE(parsed.file.has_value());
    const auto& entries = parsed.file->entries;
    REQUIRE(entries.size() == 4);
    CHECK(entries[0].capture == "web.pcap");
    CHECK(entries[1].first == 2);
    CHECK(entries[1].last == 5);
    CHECK(entries[1].rule == "ssh");
    CHECK(entries[1].line == 4);
    CHECK(entries[2].rule == "#3");
    CHECK(entries[3].verdict == ExpectedVerdict::not_ip);
    CHECK(entries[3].rule.empty());
}

TEST_CASE("expect: errors name line and column")
{
    const ExpectParseResult parsed =
        parse_expectations("0 drop\n3\ncapture\n4 drop ssh more\n", "t.expect");
    CHECK_FALSE(parsed.file.has_value());
    REQUIRE(parsed.errors.size() == 4);
    CHECK(parsed.errors[0] == "t.expect:1:1: error: invalid packet index '0': expected a number "
                              "from 1, or a range such as 2-5");
    CHECK(parsed.errors[1] == "t.expect:2:2: error: missing verdict after the packet index: "
                              "expected accept, drop or not_ip");
    CHECK(parsed.errors[2] == "t.expect:3:1: error: missing capture name after 'capture'");
    CHECK(parsed.errors[3] ==
          "t.expect:4:12: error: unexpected 'more' after the rule; comments start with '#'");
}

TEST_CASE("expect: checker reports wrong verdicts, rules and missing packets")
{
    const ExpectParseResult parsed =
        parse_expectations("1 drop ssh\n2 drop #1\n3 accept\n4 drop policy\n6 not_ip\n",
                           "t.expect");
    REQUIRE(parsed.file.has_value());
    std::vector<std::string> errors;
    std::optional<ExpectChecker> checker =
        ExpectChecker::create(*parsed.file, {"dir/a.pcap"}, errors);
    REQUIRE(checker.has_value());

    const Ruleset ruleset(ssh_table(), ClassifierKind::compiled, 1);
    const Bytes* frames[] = {&ethernet_ipv4_ssh, &ethernet_ipv6_ssh, &ethernet_ipv4_ssh,
                             &ethernet_arp};
    std::uint64_t index = 0;
    for (const Bytes* frame : frames) {
        PacketOutcome outcome = judge(*frame, ruleset);
        outcome.index = ++index;
        checker->check(0, outcome, ruleset.table());
    }
    checker->finish(0, index);

    const auto& differences = checker->differences();
    REQUIRE(differences.size() == 3);
    CHECK(differences[0].index == 3);
    CHECK(differences[0].expected == "accept");
    CHECK(differences[0].actual == "drop ssh");
    CHECK(differences[1].index == 4);
    CHECK(differences[1].expected == "drop policy");
    CHECK(differences[1].actual == "not_ip");
    CHECK(differences[2].index == 6);
    CHECK(differences[2].actual == "missing (the capture has 4 packets)");
    CHECK(differences[2].line == 5);
}

TEST_CASE("expect: captures resolve by path or file name")
{
    const ExpectParseResult parsed =
        parse_expectations("capture b.pcap\n1 drop\ncapture x/a.pcap\n1 drop\n", "t.expect");
    REQUIRE(parsed.file.has_value());
    std::vector<std::string> errors;
    CHECK(ExpectChecker::create(*parsed.file, {"x/a.pcap", "y/b.pcap"}, errors).has_value());
    CHECK(errors.empty());

    CHECK_FALSE(ExpectChecker::create(*parsed.file, {"x/a.pcap", "y/b.pcap", "z/b.pcap"}, errors)
                    .has_value());
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("t.expect:2:1: error: capture 'b.pcap' matches more than one") == 0);

    const ExpectParseResult unnamed = parse_expectations("1 drop\n", "u.expect");
    errors.clear();
    CHECK_FALSE(ExpectChecker::create(*unnamed.file, {"a.pcap", "b.pcap"}, errors).has_value());
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("before the first 'capture' line are ambiguous with 2 captures") !=
          std::string::npos);
}
