#include "decode/layers.hpp"

namespace portwall::detail {

namespace {

constexpr std::uint32_t ipv4_min_header_length = 20;
constexpr std::uint32_t ipv4_max_total_length = 65535;
constexpr std::uint16_t more_fragments_flag = 0x2000;
constexpr std::uint16_t fragment_offset_mask = 0x1fff;

// Return the packet's length in bytes from the total length field.
std::uint32_t ipv4_packet_length(std::uint16_t total_length, std::uint32_t wire_length) noexcept
{
    // Linux GSO and BIG TCP pass IPv4 packets longer than the 16-bit field can state with a
    // total length of 0, so the wire length is then the packet's length.
    if (total_length == 0 && wire_length > ipv4_max_total_length)
        return wire_length;
    return total_length;
}

} // namespace

void decode_ipv4(std::span<const std::uint8_t> bytes, std::uint32_t wire_length,
                 PacketView& view) noexcept
{
    view.family = Family::ipv4;

    if (bytes.size() < ipv4_min_header_length) {
        view.status = DecodeStatus::truncated_ip;
        return;
    }
    // The addresses and protocol are read before the lengths are checked, so
    // that a malformed packet can still be logged with them.
    view.protocol = bytes[9];
    view.src = read_address(Family::ipv4, bytes, 12);
    view.dst = read_address(Family::ipv4, bytes, 16);

    const std::uint32_t header_length = (bytes[0] & 0x0fu) * 4u;
    if (header_length < ipv4_min_header_length || header_length > wire_length) {
        view.status = DecodeStatus::bad_ipv4_header_length;
        return;
    }

    // Bytes past the total length, such as Ethernet padding, are not part of the packet.
    const std::uint32_t ip_length = ipv4_packet_length(read_be16(bytes, 2), wire_length);
    if (ip_length < header_length || ip_length > wire_length) {
        view.status = DecodeStatus::bad_ipv4_total_length;
        return;
    }

    view.status = DecodeStatus::ok;
    view.ip_length = ip_length;

    const std::uint16_t fragment_field = read_be16(bytes, 6);
    const bool more_fragments = (fragment_field & more_fragments_flag) != 0;
    const bool later_fragment = (fragment_field & fragment_offset_mask) != 0;
    view.fragment = more_fragments || later_fragment;
    if (later_fragment) {
        view.ports = PortsAbsence::later_fragment;
        return;
    }

    // Options between byte 20 and the IHL are skipped unread. When the snap length or the
    // queue copy range ends inside them, `captured` is empty and the ports are not_captured.
    const std::size_t packet_captured = std::min<std::size_t>(bytes.size(), ip_length);
    Segment segment;
    segment.captured = tail_from(bytes.first(packet_captured), header_length);
    segment.length = ip_length - header_length;
    segment.whole = !more_fragments;
    decode_transport(segment, view);
}

} // namespace portwall::detail
