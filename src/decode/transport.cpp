#include "decode/layers.hpp"

namespace portwall::detail {

namespace {

// Fields that the decoder reads from an upper-layer header.
enum class Reads : std::uint8_t { ports, icmp_type };

// How to decode one upper-layer protocol.
struct TransportFormat {
    std::uint8_t protocol;
    std::uint32_t min_length; // bytes of the shortest valid header
    Reads reads;
    // Check the header's own fields once min_length bytes are captured.
    DecodeStatus (*check)(const Segment& segment) noexcept;
};

DecodeStatus check_nothing(const Segment&) noexcept
{
    return DecodeStatus::ok;
}

DecodeStatus check_tcp(const Segment& segment) noexcept
{
    const std::uint32_t header_length = (segment.captured[12] >> 4) * 4u;
    if (header_length < 20)
        return DecodeStatus::bad_tcp_data_offset;
    // A first fragment may end inside the TCP options, so only a whole segment is checked.
    if (segment.whole && header_length > segment.length)
        return DecodeStatus::bad_tcp_data_offset;
    return DecodeStatus::ok;
}

DecodeStatus check_udp(const Segment& segment) noexcept
{
    const std::uint16_t udp_length = read_be16(segment.captured, 4);
    // UDP over an IPv6 jumbogram or GSO packet longer than 65535 bytes sets the length to 0
    // (RFC 2147 section 2, now RFC 2675).
    if (udp_length == 0 && segment.ipv6_jumbo)
        return DecodeStatus::ok;
    if (udp_length < 8)
        return DecodeStatus::bad_udp_length;
    // The UDP length covers the whole datagram, which a first fragment only starts.
    if (segment.whole && udp_length > segment.length)
        return DecodeStatus::bad_udp_length;
    return DecodeStatus::ok;
}

DecodeStatus check_udplite(const Segment& segment) noexcept
{
    // UDP-Lite's length field is the checksum coverage. 0 covers the whole datagram, 1..7 is
    // illegal (RFC 3828 section 3.1), and more than the datagram covers bytes that do not exist.
    const std::uint16_t coverage = read_be16(segment.captured, 4);
    if (coverage == 0)
        return DecodeStatus::ok;
    if (coverage < 8)
        return DecodeStatus::bad_udplite_coverage;
    if (segment.whole && coverage > segment.length)
        return DecodeStatus::bad_udplite_coverage;
    return DecodeStatus::ok;
}

// ICMP needs 8 bytes (RFC 792: type, code, checksum and 4 more in every message). ICMPv6
// needs 4 (RFC 2463 section 2.1, kept in RFC 4443: type, code, checksum, then a message
// body that may be empty).
constexpr TransportFormat transport_formats[] = {
    {ipproto::tcp, 20, Reads::ports, check_tcp},
    {ipproto::udp, 8, Reads::ports, check_udp},
    {ipproto::udplite, 8, Reads::ports, check_udplite},
    {ipproto::sctp, 12, Reads::ports, check_nothing},
    {ipproto::icmp, 8, Reads::icmp_type, check_nothing},
    {ipproto::icmpv6, 4, Reads::icmp_type, check_nothing},
};

const TransportFormat* find_format(std::uint8_t protocol) noexcept
{
    for (const TransportFormat& format : transport_formats) {
        if (format.protocol == protocol)
            return &format;
    }
    return nullptr;
}

// Check that the shortest header is captured, and set the reason in `view` when it is not.
// A header that the IP lengths cut short is malformed. One cut by a first fragment's end or
// by the capture is not.
bool header_captured(const Segment& segment, std::uint32_t min_length, PacketView& view) noexcept
{
    if (segment.length < min_length && segment.whole) {
        view.status = DecodeStatus::truncated_transport;
        return false;
    }
    if (segment.length < min_length || segment.captured.size() < min_length) {
        view.ports = PortsAbsence::not_captured;
        return false;
    }
    return true;
}

} // namespace

void decode_transport(const Segment& segment, PacketView& view) noexcept
{
    const TransportFormat* format = find_format(view.protocol);
    if (format == nullptr) {
        view.ports = PortsAbsence::no_ports_in_protocol;
        return;
    }

    if (!header_captured(segment, format->min_length, view)) {
        // ICMP has no ports, whether or not its header was captured, and has_icmp stays false.
        if (format->reads == Reads::icmp_type)
            view.ports = PortsAbsence::no_ports_in_protocol;
        return;
    }

    const DecodeStatus status = format->check(segment);
    if (status != DecodeStatus::ok) {
        view.status = status;
        return;
    }

    if (format->reads == Reads::icmp_type) {
        view.ports = PortsAbsence::no_ports_in_protocol;
        view.has_icmp = true;
        view.icmp_type = segment.captured[0];
        view.icmp_code = segment.captured[1];
        return;
    }

    // Every port-carrying protocol starts with the source and destination ports.
    view.ports = PortsAbsence::present;
    view.sport = read_be16(segment.captured, 0);
    view.dport = read_be16(segment.captured, 2);
}

} // namespace portwall::detail
