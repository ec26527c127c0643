// Readers for the ClassBench rule and trace formats, for the classifier
// benchmark and its tests.
//
// Rule line (tab-separated; the first line has the highest priority):
//   @SRC/LEN  DST/LEN  SPORT_LO : SPORT_HI  DPORT_LO : DPORT_HI  PROTO/MASK  FLAGS/MASK
// Trace line (tab-separated decimal numbers):
//   SRC  DST  SPORT  DPORT  PROTO  FLAGS  RULE_INDEX
#pragma once

#include "classify/rule.hpp"
#include "decode/packet.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace portwall::bench {

// One trace header. ClassBench traces are IPv4 only.
struct TraceEntry {
    std::uint32_t src = 0;
    std::uint32_t dst = 0;
    std::uint16_t sport = 0;
    std::uint16_t dport = 0;
    std::uint8_t protocol = 0;
};

// Whether a file contains ClassBench rules: its first non-blank line starts
// with '@'.
bool is_classbench_rules(const std::string& path);

// Read a ClassBench rule file into a table whose rules all accept and whose
// policy drops, so a match index and a verdict tell the same story. The flags
// column is ignored. A port range of 0 : 65535 becomes "any port" (the rule
// then names no ports), a protocol mask of 0 "any protocol", and host bits
// beyond a prefix length are cleared. Throws std::runtime_error naming the
// file, line and text of the first line it cannot read.
RuleTable read_classbench_rules(const std::string& path);

// Read a ClassBench trace. Throws std::runtime_error like the rule reader.
std::vector<TraceEntry> read_classbench_trace(const std::string& path);

// The packet view the decoder would produce for a trace header: ports are
// readable only for TCP, UDP, UDP-Lite and SCTP, as on the wire.
PacketView packet_from_trace(const TraceEntry& entry) noexcept;

} // namespace portwall::bench
