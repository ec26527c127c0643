// The replay driver: packets from pcap and pcapng files through a Ruleset.
//
// It reads captures with libpcap, finds the IP header with strip_link, decodes
// it with decode_ip and classifies it with Ruleset::evaluate, exactly as the
// queue driver does for live packets. It never parses rule text.
#pragma once

#include "classify/ruleset.hpp"
#include "decode/decode.hpp"
#include "decode/packet.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

namespace portwall::replay {

// Map a value returned by pcap_datalink (a DLT_ value) to the LinkType that
// strip_link understands. Returns nothing for link types portwall cannot strip.
std::optional<LinkType> link_type_from_dlt(int dlt) noexcept;

// Outcome of one frame of a capture.
struct PacketOutcome {
    std::uint64_t index = 0; // 1-based position within its capture, like tcpdump's frame number
    bool is_ip = false;      // false: not an IP frame, so it has no verdict
    PacketView packet;       // the decoded packet, when is_ip
    Match match;             // the verdict, when is_ip
};

// Decide one frame: strip the link layer, decode the IP packet and classify
// it. `wire_length` is the frame's length on the wire, link header included.
// A frame whose link header is cut short is malformed (truncated_link) and
// gets the policy, like any other malformed packet.
PacketOutcome judge_frame(LinkType link, std::span<const std::uint8_t> captured,
                          std::uint32_t wire_length, const Ruleset& ruleset) noexcept;

// Packet counts over every capture of one run.
struct Totals {
    std::uint64_t packets = 0; // frames read
    std::uint64_t accepted = 0;
    std::uint64_t dropped = 0;
    std::uint64_t not_ip = 0;
    // Malformed packets by DecodeStatus; the `ok` slot stays zero. Malformed
    // packets are also counted as accepted or dropped, by the policy.
    std::array<std::uint64_t, decode_status_count> malformed{};

    void add(const PacketOutcome& outcome) noexcept;
    std::uint64_t malformed_total() const noexcept;
};

// Result of reading one capture.
struct CaptureReport {
    std::string path;
    std::string link_type; // libpcap's name of the file's link type; empty if not opened
    std::uint64_t packets = 0; // frames read and judged
    std::string error;         // empty when the capture was read to its end
    // Index of the packet whose reading failed (packets + 1), or 0 when the
    // file could not be opened or its link type is not supported.
    std::uint64_t failed_index = 0;

    bool ok() const noexcept { return error.empty(); }
};

using PacketCallback = std::function<void(const CaptureReport&, const PacketOutcome&)>;

// Replay every packet of the capture at `path` through `ruleset`, adding them
// to `totals` and calling `on_packet` (when set) for each. Reading stops at
// the first error, which the report names with the packet index; the packets
// read before it stay counted.
CaptureReport replay_capture(const std::string& path, const Ruleset& ruleset, Totals& totals,
                             const PacketCallback& on_packet);

} // namespace portwall::replay
