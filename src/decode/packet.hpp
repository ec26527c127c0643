// Decoded view of one IP packet: the fields that classification reads.
//
// This header is the contract between the decoder and everything above it.
// It depends on nothing but the standard library.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace portwall {

enum class Family : std::uint8_t { ipv4 = 4, ipv6 = 6 };

// An IPv4 or IPv6 address in network byte order. IPv4 uses bytes[0..3] and
// leaves the other twelve bytes zero, so that two equal addresses compare
// equal byte for byte.
struct Address {
    Family family = Family::ipv4;
    std::array<std::uint8_t, 16> bytes{};

    friend bool operator==(const Address&, const Address&) = default;
};

// Why a packet could not be decoded. Each reason has a stable name (see
// decode_status_name) that counters, logs and the replay report use.
// A packet with any status other than ok is malformed: it gets the policy
// verdict and is counted under its reason.
enum class DecodeStatus : std::uint8_t {
    ok = 0,
    truncated_link,          // link-layer header cut short
    truncated_ip,            // fewer captured bytes than a minimal IP header
    bad_ip_version,          // version nibble is neither 4 nor 6
    bad_ipv4_header_length,  // IHL below 5, or the header longer than the wire length
    bad_ipv4_total_length,   // total length below IHL * 4 or above the wire length
    bad_ipv6_payload_length, // payload length beyond the wire length
    truncated_extension,     // IPv6 extension header cut short by the payload length
    extension_chain_too_long, // more IPv6 extension headers than the decoder walks
    truncated_transport,     // TCP/UDP/UDP-Lite/SCTP/ICMP header cut short by the IP lengths
    bad_tcp_data_offset,     // TCP data offset below 5 or beyond the segment
    bad_udp_length,          // UDP length below 8 or beyond the datagram
    extension_not_captured,  // IPv6 extension header beyond the captured bytes: upper protocol
                             // unknown
    bad_udplite_coverage,    // UDP-Lite checksum coverage 1..7 or beyond the datagram
    count_                   // number of statuses, not a status
};

inline constexpr std::size_t decode_status_count = static_cast<std::size_t>(DecodeStatus::count_);

// Stable, snake_case name of a status, for counters and reports.
std::string_view decode_status_name(DecodeStatus status) noexcept;

// Reason that a well-formed packet has no readable ports.
enum class PortsAbsence : std::uint8_t {
    present = 0,
    no_ports_in_protocol, // ICMP, ESP, GRE, ...: the protocol has no ports
    later_fragment,       // fragment offset is not zero
    not_captured,         // the header lies beyond the captured bytes (snap length,
                          // queue copy range, first fragment too short)
};

struct PacketView {
    DecodeStatus status = DecodeStatus::truncated_ip;
    Family family = Family::ipv4;
    // Upper-layer protocol, after IPv6 extension headers. In a malformed packet, the
    // header where decoding stopped.
    std::uint8_t protocol = 0;
    // Set whenever the fixed IP header was captured, also for most malformed
    // packets (see addresses_read), so that logs can name the sender.
    Address src;
    Address dst;

    PortsAbsence ports = PortsAbsence::not_captured;
    std::uint16_t sport = 0; // valid when ports == present
    std::uint16_t dport = 0;

    bool has_icmp = false; // ICMP or ICMPv6 type and code were read
    std::uint8_t icmp_type = 0;
    std::uint8_t icmp_code = 0;

    bool fragment = false; // any fragment, first or later

    // Bytes on the wire from the first byte of the IP header, as the IP header
    // states it (or as the wire length states it for GSO packets whose IPv4
    // total length is 0).
    std::uint32_t ip_length = 0;

    bool ok() const noexcept { return status == DecodeStatus::ok; }
    // True when src, dst and family hold values read from the packet: every
    // status except those raised before the fixed IP header was read.
    bool addresses_read() const noexcept
    {
        return status != DecodeStatus::truncated_link && status != DecodeStatus::truncated_ip &&
               status != DecodeStatus::bad_ip_version;
    }
    bool has_ports() const noexcept { return status == DecodeStatus::ok && ports == PortsAbsence::present; }
};

// IANA protocol numbers used across the project.
namespace ipproto {
inline constexpr std::uint8_t hopopts = 0;
inline constexpr std::uint8_t icmp = 1;
inline constexpr std::uint8_t tcp = 6;
inline constexpr std::uint8_t udp = 17;
inline constexpr std::uint8_t routing = 43;
inline constexpr std::uint8_t fragment = 44;
inline constexpr std::uint8_t esp = 50;
inline constexpr std::uint8_t ah = 51;
inline constexpr std::uint8_t icmpv6 = 58;
inline constexpr std::uint8_t no_next_header = 59;
inline constexpr std::uint8_t dstopts = 60;
inline constexpr std::uint8_t sctp = 132;
inline constexpr std::uint8_t mobility = 135;
inline constexpr std::uint8_t udplite = 136;
} // namespace ipproto

} // namespace portwall
