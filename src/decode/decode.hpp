// Packet decoding: bytes to a PacketView.
//
// The decoder never reads outside the span it is given, never allocates and
// never throws. It knows nothing of rules, capture files or netlink.
#pragma once

#include "decode/packet.hpp"

#include <cstdint>
#include <span>

namespace portwall {

// Decode an IP packet whose first byte is the IP version nibble.
//
// `bytes` are the captured bytes; `wire_length` is the packet's length on the
// wire (at least bytes.size()). A header that the IP lengths place inside the
// packet but that lies beyond the captured bytes is not an error: the packet
// is reported with ports == not_captured. A header that the packet's own
// lengths cut short is an error (status != ok).
//
// The exception is an IPv6 extension header beyond the captured bytes. The
// upper-layer protocol is then unknown, so the status is extension_not_captured.
// Captured bytes past `wire_length` are ignored.
PacketView decode_ip(std::span<const std::uint8_t> bytes, std::uint32_t wire_length) noexcept;

// Link-layer types that the decoder understands, by their pcap LINKTYPE_
// numbers, so that the replay driver can pass them through unchanged.
enum class LinkType : std::uint32_t {
    null_bsd = 0,     // BSD loopback: 4-byte address family in host byte order
    ethernet = 1,     // Ethernet II, with up to 16 802.1Q/802.1ad tags
    raw = 101,        // raw IPv4 or IPv6
    loop = 108,       // OpenBSD loopback: 4-byte address family in network byte order
    linux_sll = 113,  // Linux cooked capture v1
    ipv4 = 228,       // raw IPv4
    ipv6 = 229,       // raw IPv6
    linux_sll2 = 276, // Linux cooked capture v2
};

bool link_type_supported(std::uint32_t link_type) noexcept;

// Result of stripping the link layer.
struct LinkResult {
    enum class Kind : std::uint8_t { ip, not_ip, truncated } kind = Kind::truncated;
    std::uint32_t ip_offset = 0; // offset of the IP header, when kind == ip
};

// Find the IP header inside a link-layer frame. Ethernet and Linux cooked
// captures may carry up to 16 stacked VLAN tags, and a frame with more is not_ip.
// Raw link types return ip_offset 0 even for an empty frame, which decode_ip
// then reports as truncated_ip.
LinkResult strip_link(std::uint32_t link_type, std::span<const std::uint8_t> frame) noexcept;

} // namespace portwall
