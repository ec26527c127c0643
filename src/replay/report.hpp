// Text and JSON output of `portwall replay`: per-packet lines and the summary.
#pragma once

#include "classify/ruleset.hpp"
#include "replay/expect.hpp"
#include "replay/replay.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace portwall::replay {

// Everything one run produced.
struct RunResult {
    Totals totals;
    std::vector<CaptureReport> captures;
    bool expectations_checked = false;
    std::vector<ExpectDifference> differences;
};

// Format one line for one packet, without a newline, for example
//   web.pcap:3 ipv4 tcp 198.18.0.1:40000 -> 198.18.0.2:22 drop rule=ssh
//   web.pcap:4 ipv6 icmpv6 2001:db8::1 -> 2001:db8::2 accept policy ports=no_ports_in_protocol
//   web.pcap:5 malformed=truncated_ip accept policy
//   web.pcap:6 not_ip
std::string format_packet_line(std::string_view capture, const PacketOutcome& outcome,
                               const RuleTable& table);

// Format one line for one expectation difference, without a newline.
std::string format_difference(const ExpectDifference& difference, const std::string& expect_path);

// Format the text summary: several lines, each ending in a newline.
std::string format_text_summary(const RunResult& result, const Ruleset& ruleset);

// Format the summary as one JSON object on one line, without a newline.
// Its keys packets, accepted, dropped, not_ip, policy_hits and rules ({"name", "hits"}
// in file order) are a stable interface; the other keys may grow.
std::string format_json_summary(const RunResult& result, const Ruleset& ruleset);

} // namespace portwall::replay
