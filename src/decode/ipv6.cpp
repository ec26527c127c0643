#include "decode/layers.hpp"

namespace portwall::detail {

namespace {

constexpr std::uint32_t ipv6_header_length = 40;

// Extension headers walked before a packet is rejected as extension_chain_too_long.
// RFC 2460 section 4.1, kept in RFC 8200, recommends each extension header at most once and
// destination options at most twice: six headers before the upper layer. Eight leaves room
// for senders that repeat one, and the bound keeps the work per packet fixed.
constexpr int max_extension_headers = 8;

constexpr std::uint16_t fragment_offset_mask = 0xfff8;
constexpr std::uint16_t more_fragments_flag = 0x0001;

// Whether the decoder walks past this header to find the upper layer. ESP and No Next
// Header end the walk: what follows them cannot be read.
bool is_walked_extension(std::uint8_t next_header) noexcept
{
    switch (next_header) {
    case ipproto::hopopts:
    case ipproto::routing:
    case ipproto::fragment:
    case ipproto::dstopts:
    case ipproto::ah:
        return true;
    default:
        return false;
    }
}

// One extension header, as far as the walk needs it.
struct Extension {
    std::uint8_t next_header = 0;
    std::uint32_t length = 0;    // bytes, including the first two
    bool more_fragments = false; // fragment header only
    bool later_fragment = false; // fragment header only: offset is not zero
};

std::uint32_t extension_length(std::uint8_t type, std::uint8_t length_field) noexcept
{
    // The fragment header has a fixed size, and its second byte is reserved.
    if (type == ipproto::fragment)
        return 8;
    // AH counts 4-byte units minus 2 (RFC 4302 section 2.2). The others count 8-byte units
    // beyond the first 8 bytes (RFC 8200).
    if (type == ipproto::ah)
        return (length_field + 2u) * 4u;
    return (length_field + 1u) * 8u;
}

std::size_t bytes_after(std::span<const std::uint8_t> bytes, std::size_t offset) noexcept
{
    return offset < bytes.size() ? bytes.size() - offset : 0;
}

// Read the extension header of `type` at `offset` into `extension`. `packet` contains the
// captured bytes within the IP length, and `offset` <= `ip_length`.
DecodeStatus read_extension(std::span<const std::uint8_t> packet, std::uint32_t ip_length,
                            std::uint8_t type, std::uint32_t offset,
                            Extension& extension) noexcept
{
    // The next header and length fields come first, and the walk cannot go on without them.
    if (ip_length - offset < 2)
        return DecodeStatus::truncated_extension;
    // The upper-layer protocol lies behind this header, so a rule naming a protocol would
    // be compared with an extension header type. The packet is reported as malformed to
    // give it the policy verdict.
    if (bytes_after(packet, offset) < 2)
        return DecodeStatus::extension_not_captured;

    extension.next_header = packet[offset];
    extension.length = extension_length(type, packet[offset + 1]);
    if (ip_length - offset < extension.length)
        return DecodeStatus::truncated_extension;
    if (type != ipproto::fragment)
        return DecodeStatus::ok;

    if (bytes_after(packet, offset) < 4)
        return DecodeStatus::extension_not_captured;
    const std::uint16_t fragment_field = read_be16(packet, offset + 2);
    extension.more_fragments = (fragment_field & more_fragments_flag) != 0;
    extension.later_fragment = (fragment_field & fragment_offset_mask) != 0;
    return DecodeStatus::ok;
}

// Walk the extension headers from `next_header` to the upper layer and decode it.
void walk_extensions(std::span<const std::uint8_t> packet, std::uint32_t ip_length,
                     std::uint8_t next_header, bool jumbo, PacketView& view) noexcept
{
    std::uint32_t offset = ipv6_header_length;
    bool whole = true;

    for (int walked = 0; is_walked_extension(next_header); ++walked) {
        view.protocol = next_header;
        if (walked == max_extension_headers) {
            view.status = DecodeStatus::extension_chain_too_long;
            return;
        }

        Extension extension;
        const DecodeStatus status = read_extension(packet, ip_length, next_header, offset,
                                                   extension);
        if (status != DecodeStatus::ok) {
            view.status = status;
            return;
        }

        if (next_header == ipproto::fragment) {
            view.fragment = view.fragment || extension.more_fragments || extension.later_fragment;
            whole = whole && !extension.more_fragments;
        }
        // In a later fragment the fragment header's next header is the first header of the
        // original packet's fragmentable part: usually the upper layer, but it may be a
        // destination options header.
        if (extension.later_fragment) {
            view.protocol = extension.next_header;
            view.ports = PortsAbsence::later_fragment;
            return;
        }

        offset += extension.length;
        next_header = extension.next_header;
    }

    view.protocol = next_header;
    Segment segment;
    segment.captured = tail_from(packet, offset);
    segment.length = ip_length - offset;
    segment.whole = whole;
    segment.ipv6_jumbo = jumbo;
    decode_transport(segment, view);
}

} // namespace

void decode_ipv6(std::span<const std::uint8_t> bytes, std::uint32_t wire_length,
                 PacketView& view) noexcept
{
    view.family = Family::ipv6;

    if (bytes.size() < ipv6_header_length) {
        view.status = DecodeStatus::truncated_ip;
        return;
    }
    // The addresses are read before the lengths are checked, so that a malformed
    // packet can still be logged with its source and destination.
    view.protocol = bytes[6];
    view.src = read_address(Family::ipv6, bytes, 8);
    view.dst = read_address(Family::ipv6, bytes, 24);

    const std::uint16_t payload_length = read_be16(bytes, 4);
    if (ipv6_header_length + payload_length > wire_length) {
        view.status = DecodeStatus::bad_ipv6_payload_length;
        return;
    }

    // Payload length 0 with bytes after the header is a jumbogram (RFC 2675, which states
    // the length in a hop-by-hop option) or a Linux GSO or BIG TCP packet. The wire length
    // is the packet's length in all three cases.
    // NOTE: the jumbo payload option itself is not read or checked against the wire length.
    const bool jumbo = payload_length == 0 && wire_length > ipv6_header_length;
    const std::uint32_t ip_length = jumbo ? wire_length : ipv6_header_length + payload_length;

    view.status = DecodeStatus::ok;
    view.ip_length = ip_length;

    // Bytes past the payload length, such as Ethernet padding, are not part of the packet.
    const std::size_t packet_captured = std::min<std::size_t>(bytes.size(), ip_length);
    walk_extensions(bytes.first(packet_captured), ip_length, bytes[6], jumbo, view);
}

} // namespace portwall::detail
