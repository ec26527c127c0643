// libpcap's BPF as a classification baseline: one filter program per rule,
// compiled with pcap_compile. The programs run in rule order with
// pcap_offline_filter on synthesized raw IP packets, and the first filter
// that accepts a packet decides.
#pragma once

#include "classify/rule.hpp"
#include "decode/packet.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

struct bpf_program;

namespace portwall::bench {

// A raw IP packet (link type DLT_RAW) carrying the fields of a packet view:
// an IPv4 or IPv6 header and, for TCP, UDP, UDP-Lite, SCTP, ICMP and ICMPv6,
// a transport header. Other protocols get 8 zero bytes of payload.
struct RawPacket {
    std::array<std::uint8_t, 64> bytes{};
    std::uint32_t length = 0;
};

RawPacket synthesize_packet(const PacketView& packet) noexcept;

// The pcap filter expression equivalent to `rule`, or an empty string for a
// rule that matches every packet. Port conditions use `portrange`, which
// libpcap evaluates only for TCP, UDP and SCTP, so a rule naming ports never
// matches UDP-Lite here although portwall's rule does.
std::string bpf_filter_expression(const Rule& rule);

class BpfBaseline {
public:
    // Compile one filter per rule. Throws std::runtime_error naming the rule
    // number, the expression and libpcap's error when one does not compile.
    explicit BpfBaseline(const RuleTable& table);
    ~BpfBaseline();
    BpfBaseline(const BpfBaseline&) = delete;
    BpfBaseline& operator=(const BpfBaseline&) = delete;

    // Index of the first rule whose filter accepts the packet, or
    // Match::policy.
    std::uint32_t first_match(const RawPacket& packet) const noexcept;

    std::size_t instruction_count() const noexcept;

private:
    std::vector<bpf_program> programs_;
};

} // namespace portwall::bench
