// The steps of decode_ip, one file per layer, and the byte readers they share.
// Internal to src/decode: nothing outside this folder includes it.
#pragma once

#include "decode/packet.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

namespace portwall::detail {

// Read a big-endian 16-bit field. The caller has proved that both bytes exist.
inline std::uint16_t read_be16(std::span<const std::uint8_t> bytes, std::size_t offset) noexcept
{
    return static_cast<std::uint16_t>(bytes[offset] << 8 | bytes[offset + 1]);
}

// Read a big-endian 32-bit field. The caller has proved that all four bytes exist.
inline std::uint32_t read_be32(std::span<const std::uint8_t> bytes, std::size_t offset) noexcept
{
    const std::uint32_t high = read_be16(bytes, offset);
    return high << 16 | read_be16(bytes, offset + 2);
}

// Copy an address of `family` from bytes[offset..]. The caller has proved that it exists.
inline Address read_address(Family family, std::span<const std::uint8_t> bytes,
                            std::size_t offset) noexcept
{
    Address address;
    address.family = family;
    const std::size_t size = family == Family::ipv4 ? 4 : 16;
    std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(offset), size, address.bytes.begin());
    return address;
}

// Return bytes[offset..], or an empty span when offset lies at or past the end.
inline std::span<const std::uint8_t> tail_from(std::span<const std::uint8_t> bytes,
                                               std::size_t offset) noexcept
{
    return offset < bytes.size() ? bytes.subspan(offset) : std::span<const std::uint8_t>{};
}

// The upper-layer part of an IP packet, as decode_transport receives it.
struct Segment {
    std::span<const std::uint8_t> captured; // captured bytes, never more than `length`
    std::uint32_t length = 0;               // bytes that the IP lengths give the upper layer
    bool whole = true;      // false in a first fragment, where `length` is only its share
    bool ipv6_jumbo = false; // IPv6 payload length 0 (jumbogram or GSO): UDP length 0 allowed
};

// Decode the IPv4 header and what follows it. bytes.size() <= wire_length.
void decode_ipv4(std::span<const std::uint8_t> bytes, std::uint32_t wire_length,
                 PacketView& view) noexcept;

// Decode the IPv6 header, its extension headers and what follows them.
// bytes.size() <= wire_length.
void decode_ipv6(std::span<const std::uint8_t> bytes, std::uint32_t wire_length,
                 PacketView& view) noexcept;

// Decode the upper-layer header of view.protocol: ports, or ICMP type and code.
// Sets view.status only when the header is malformed.
void decode_transport(const Segment& segment, PacketView& view) noexcept;

} // namespace portwall::detail
