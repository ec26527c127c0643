// Unit tests for src/decode: crafted packets for every decoder branch, run for IPv4 and
// IPv6 where the case applies, header bytes from real captures, and random input.
#include "decode/decode.hpp"

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <span>
#include <string>
#include <vector>

using namespace portwall;

// Print enums by name in failed checks. doctest finds these by argument-dependent lookup;
// without them it prints the underlying integer.
namespace portwall {

doctest::String toString(DecodeStatus status)
{
    return std::string(decode_status_name(status)).c_str();
}

doctest::String toString(PortsAbsence ports)
{
    constexpr const char* names[] = {"present", "no_ports_in_protocol", "later_fragment",
                                     "not_captured"};
    return names[static_cast<int>(ports)];
}

doctest::String toString(LinkResult::Kind kind)
{
    constexpr const char* names[] = {"ip", "not_ip", "truncated"};
    return names[static_cast<int>(kind)];
}

doctest::String toString(Family family)
{
    return family == Family::ipv4 ? "IPv4" : "IPv6";
}

} // namespace portwall

namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::array<Family, 2> both_families = {Family::ipv4, Family::ipv6};

// Test addresses from 198.18.0.0/15 and 2001:db8::/32.
constexpr std::array<std::uint8_t, 4> ipv4_src = {198, 18, 0, 1};
constexpr std::array<std::uint8_t, 4> ipv4_dst = {198, 19, 0, 2};
constexpr std::array<std::uint8_t, 16> ipv6_src = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                                   0,    0,    0,    0,    0, 0, 0, 1};
constexpr std::array<std::uint8_t, 16> ipv6_dst = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                                   0,    0,    0,    0,    0, 0, 0, 2};

void put_be16(Bytes& bytes, std::size_t offset, std::size_t value)
{
    bytes[offset] = static_cast<std::uint8_t>(value >> 8);
    bytes[offset + 1] = static_cast<std::uint8_t>(value);
}

Bytes concat(std::initializer_list<Bytes> parts)
{
    Bytes joined;
    for (const Bytes& part : parts)
        joined.insert(joined.end(), part.begin(), part.end());
    return joined;
}

Address expected_address(Family family, bool source)
{
    Address address;
    address.family = family;
    if (family == Family::ipv4) {
        const auto& bytes = source ? ipv4_src : ipv4_dst;
        std::copy(bytes.begin(), bytes.end(), address.bytes.begin());
    } else {
        address.bytes = source ? ipv6_src : ipv6_dst;
    }
    return address;
}

std::size_t ip_header_length(Family family)
{
    return family == Family::ipv4 ? 20 : 40;
}

// ---- Upper-layer headers ----

// A TCP SYN header of `header_words` 4-byte words, its options all NOP.
Bytes tcp_header(std::uint16_t sport, std::uint16_t dport, std::uint8_t header_words = 5)
{
    Bytes tcp(header_words * 4u, 1);
    put_be16(tcp, 0, sport);
    put_be16(tcp, 2, dport);
    std::fill(tcp.begin() + 4, tcp.begin() + 20, 0);
    tcp[12] = static_cast<std::uint8_t>(header_words << 4);
    tcp[13] = 0x02;
    return tcp;
}

Bytes udp_datagram(std::uint16_t sport, std::uint16_t dport, std::size_t payload_size = 0)
{
    Bytes udp(8 + payload_size, 0xab);
    put_be16(udp, 0, sport);
    put_be16(udp, 2, dport);
    put_be16(udp, 4, udp.size());
    put_be16(udp, 6, 0);
    return udp;
}

Bytes udplite_header(std::uint16_t sport, std::uint16_t dport, std::uint16_t coverage)
{
    Bytes udplite(8, 0);
    put_be16(udplite, 0, sport);
    put_be16(udplite, 2, dport);
    put_be16(udplite, 4, coverage);
    return udplite;
}

Bytes sctp_header(std::uint16_t sport, std::uint16_t dport)
{
    Bytes sctp(12, 0);
    put_be16(sctp, 0, sport);
    put_be16(sctp, 2, dport);
    return sctp;
}

Bytes icmp_header(std::uint8_t type, std::uint8_t code, std::size_t size = 8)
{
    Bytes icmp(size, 0);
    icmp[0] = type;
    icmp[1] = code;
    return icmp;
}

// ---- IP headers ----

Bytes ipv4_packet(std::uint8_t protocol, const Bytes& payload, const Bytes& options = {},
                  std::uint16_t fragment_field = 0)
{
    Bytes packet(20, 0);
    const std::size_t header_length = 20 + options.size();
    packet[0] = static_cast<std::uint8_t>(0x40 | header_length / 4);
    put_be16(packet, 2, header_length + payload.size());
    put_be16(packet, 6, fragment_field);
    packet[8] = 64;
    packet[9] = protocol;
    std::copy(ipv4_src.begin(), ipv4_src.end(), packet.begin() + 12);
    std::copy(ipv4_dst.begin(), ipv4_dst.end(), packet.begin() + 16);
    return concat({packet, options, payload});
}

Bytes ipv6_packet(std::uint8_t next_header, const Bytes& payload)
{
    Bytes packet(40, 0);
    packet[0] = 0x60;
    put_be16(packet, 4, payload.size());
    packet[6] = next_header;
    packet[7] = 64;
    std::copy(ipv6_src.begin(), ipv6_src.end(), packet.begin() + 8);
    std::copy(ipv6_dst.begin(), ipv6_dst.end(), packet.begin() + 24);
    return concat({packet, payload});
}

Bytes ip_packet(Family family, std::uint8_t protocol, const Bytes& payload)
{
    return family == Family::ipv4 ? ipv4_packet(protocol, payload)
                                  : ipv6_packet(protocol, payload);
}

// Rewrite the IP length field so that the packet's own length is `length` bytes.
void set_ip_length(Bytes& packet, Family family, std::size_t length)
{
    if (family == Family::ipv4)
        put_be16(packet, 2, length);
    else
        put_be16(packet, 4, length - 40);
}

// ---- IPv6 extension headers ----

// Hop-by-hop, routing or destination options header of (length_field + 1) * 8 bytes. Zero
// bytes are Pad1 options.
Bytes options_header(std::uint8_t next_header, std::uint8_t length_field = 0)
{
    Bytes header((length_field + 1u) * 8u, 0);
    header[0] = next_header;
    header[1] = length_field;
    return header;
}

Bytes fragment_header(std::uint8_t next_header, std::uint16_t offset_units, bool more)
{
    Bytes header = {next_header, 0, 0, 0, 0x12, 0x34, 0x56, 0x78};
    put_be16(header, 2, static_cast<std::size_t>(offset_units) << 3 | (more ? 1 : 0));
    return header;
}

Bytes ah_header(std::uint8_t next_header, std::uint8_t length_field)
{
    Bytes header((length_field + 2u) * 4u, 0x5a);
    header[0] = next_header;
    header[1] = length_field;
    header[2] = 0;
    header[3] = 0;
    return header;
}

// A fragment of `payload`: IPv4 with the flags and offset field, IPv6 with a fragment header.
Bytes fragment_packet(Family family, std::uint8_t protocol, const Bytes& payload,
                      std::uint16_t offset_units, bool more)
{
    if (family == Family::ipv4) {
        const auto field = static_cast<std::uint16_t>(offset_units | (more ? 0x2000 : 0));
        return ipv4_packet(protocol, payload, {}, field);
    }
    return ipv6_packet(ipproto::fragment,
                       concat({fragment_header(protocol, offset_units, more), payload}));
}

// ---- Decoding ----

// Decode a copy that contains exactly the first `captured` bytes, so that AddressSanitizer
// reports any read past them.
PacketView decode_prefix(const Bytes& packet, std::size_t captured, std::uint32_t wire_length)
{
    const Bytes copy(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(captured));
    return decode_ip(copy, wire_length);
}

PacketView decode_whole(const Bytes& packet)
{
    return decode_prefix(packet, packet.size(), static_cast<std::uint32_t>(packet.size()));
}

LinkResult strip_copy(LinkType link_type, const Bytes& frame, std::size_t captured)
{
    const Bytes copy(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(captured));
    return strip_link(static_cast<std::uint32_t>(link_type), copy);
}

// One port-carrying protocol with a valid header.
struct PortCase {
    const char* name;
    std::uint8_t protocol;
    Bytes header;
    std::size_t min_header_length;
    std::uint16_t sport;
    std::uint16_t dport;
};

std::vector<PortCase> port_cases()
{
    return {
        {"tcp", ipproto::tcp, tcp_header(40000, 443), 20, 40000, 443},
        {"udp", ipproto::udp, udp_datagram(40001, 53, 4), 8, 40001, 53},
        {"udplite", ipproto::udplite, udplite_header(40002, 5000, 8), 8, 40002, 5000},
        {"sctp", ipproto::sctp, sctp_header(40003, 3868), 12, 40003, 3868},
    };
}

std::uint8_t icmp_protocol(Family family)
{
    return family == Family::ipv4 ? ipproto::icmp : ipproto::icmpv6;
}

std::size_t icmp_min_header_length(Family family)
{
    return family == Family::ipv4 ? 8 : 4;
}

} // namespace

// ---- Status names ----

TEST_CASE("decode_status_name equals the enumerator names")
{
    const std::array<const char*, decode_status_count> names = {
        "ok",
        "truncated_link",
        "truncated_ip",
        "bad_ip_version",
        "bad_ipv4_header_length",
        "bad_ipv4_total_length",
        "bad_ipv6_payload_length",
        "truncated_extension",
        "extension_chain_too_long",
        "truncated_transport",
        "bad_tcp_data_offset",
        "bad_udp_length",
        "extension_not_captured",
        "bad_udplite_coverage",
    };
    for (std::size_t i = 0; i < decode_status_count; ++i) {
        CAPTURE(i);
        CHECK(decode_status_name(static_cast<DecodeStatus>(i)) == names[i]);
    }
    CHECK(decode_status_name(DecodeStatus::count_) == "invalid_status");
    CHECK(decode_status_name(static_cast<DecodeStatus>(200)) == "invalid_status");
}

// ---- Valid packets ----

TEST_CASE("valid port protocols give ports")
{
    for (Family family : both_families) {
        for (const PortCase& c : port_cases()) {
            CAPTURE(family);
            CAPTURE(c.name);
            const Bytes packet = ip_packet(family, c.protocol, c.header);
            const PacketView view = decode_whole(packet);
            CHECK(view.status == DecodeStatus::ok);
            CHECK(view.family == family);
            CHECK(view.protocol == c.protocol);
            CHECK(view.ports == PortsAbsence::present);
            CHECK(view.has_ports());
            CHECK(view.sport == c.sport);
            CHECK(view.dport == c.dport);
            CHECK(view.src == expected_address(family, true));
            CHECK(view.dst == expected_address(family, false));
            CHECK(view.ip_length == packet.size());
            CHECK_FALSE(view.fragment);
            CHECK_FALSE(view.has_icmp);
        }
    }
}

TEST_CASE("icmp gives type and code, no ports")
{
    for (Family family : both_families) {
        CAPTURE(family);
        const std::uint8_t type = family == Family::ipv4 ? 8 : 128;
        const PacketView view = decode_whole(ip_packet(family, icmp_protocol(family),
                                                       icmp_header(type, 3)));
        CHECK(view.status == DecodeStatus::ok);
        CHECK(view.protocol == icmp_protocol(family));
        CHECK(view.has_icmp);
        CHECK(view.icmp_type == type);
        CHECK(view.icmp_code == 3);
        CHECK(view.ports == PortsAbsence::no_ports_in_protocol);
        CHECK_FALSE(view.has_ports());
    }
}

TEST_CASE("icmp minimum header length")
{
    // ICMP needs 8 bytes, ICMPv6 only 4.
    const PacketView icmp = decode_whole(ipv4_packet(ipproto::icmp, icmp_header(8, 0, 7)));
    CHECK(icmp.status == DecodeStatus::truncated_transport);

    const PacketView icmpv6 = decode_whole(ipv6_packet(ipproto::icmpv6, icmp_header(135, 0, 4)));
    CHECK(icmpv6.status == DecodeStatus::ok);
    CHECK(icmpv6.has_icmp);
    CHECK(icmpv6.icmp_type == 135);

    const PacketView short_icmpv6 =
        decode_whole(ipv6_packet(ipproto::icmpv6, icmp_header(135, 0, 3)));
    CHECK(short_icmpv6.status == DecodeStatus::truncated_transport);
}

TEST_CASE("protocols without ports")
{
    for (Family family : both_families) {
        for (std::uint8_t protocol : {std::uint8_t{47}, ipproto::esp, std::uint8_t{255}}) {
            CAPTURE(family);
            CAPTURE(int{protocol});
            const PacketView view = decode_whole(ip_packet(family, protocol, Bytes(16, 0)));
            CHECK(view.status == DecodeStatus::ok);
            CHECK(view.protocol == protocol);
            CHECK(view.ports == PortsAbsence::no_ports_in_protocol);
            CHECK_FALSE(view.has_icmp);
        }
    }
}

// ---- IP version and minimum length ----

TEST_CASE("empty or short packet is truncated_ip")
{
    CHECK(decode_ip({}, 0).status == DecodeStatus::truncated_ip);
    CHECK(decode_ip({}, 1500).status == DecodeStatus::truncated_ip);
    for (Family family : both_families) {
        CAPTURE(family);
        const Bytes packet = ip_packet(family, ipproto::tcp, tcp_header(1, 2));
        for (std::size_t n = 1; n < ip_header_length(family); ++n) {
            CAPTURE(n);
            CHECK(decode_prefix(packet, n, static_cast<std::uint32_t>(packet.size())).status ==
                  DecodeStatus::truncated_ip);
        }
    }
}

TEST_CASE("version nibble other than 4 or 6")
{
    for (std::uint8_t version : {0, 1, 3, 5, 7, 15}) {
        CAPTURE(int{version});
        Bytes packet = ipv4_packet(ipproto::tcp, tcp_header(1, 2));
        packet[0] = static_cast<std::uint8_t>(version << 4 | 5);
        CHECK(decode_whole(packet).status == DecodeStatus::bad_ip_version);
    }
}

TEST_CASE("wire length shorter than captured bytes")
{
    // The bytes past the wire length are not part of the packet.
    for (Family family : both_families) {
        CAPTURE(family);
        const Bytes packet = ip_packet(family, ipproto::tcp, tcp_header(1, 2));
        const std::uint32_t wire = static_cast<std::uint32_t>(ip_header_length(family) + 4);
        const PacketView view = decode_prefix(packet, packet.size(), wire);
        CHECK(view.status == (family == Family::ipv4 ? DecodeStatus::bad_ipv4_total_length
                                                     : DecodeStatus::bad_ipv6_payload_length));
    }
}

TEST_CASE("malformed packet keeps its addresses")
{
    // Logs of malformed packets name the sender, so the addresses are read
    // even when a length check fails afterwards.
    for (Family family : both_families) {
        CAPTURE(family);
        const Bytes packet = ip_packet(family, ipproto::tcp, tcp_header(1, 2));
        const std::uint32_t wire = static_cast<std::uint32_t>(ip_header_length(family) + 4);
        const PacketView view = decode_prefix(packet, packet.size(), wire);
        CHECK_FALSE(view.ok());
        CHECK(view.addresses_read());
        CHECK(view.src == expected_address(family, true));
        CHECK(view.dst == expected_address(family, false));
    }
    const Bytes short_packet = {0x45, 0x00};
    CHECK_FALSE(decode_whole(short_packet).addresses_read());
}

// ---- IPv4 header ----

TEST_CASE("ipv4 options are skipped")
{
    for (std::size_t words = 1; words <= 10; ++words) {
        CAPTURE(words);
        const Bytes options(words * 4, 1);
        const Bytes packet = ipv4_packet(ipproto::tcp, tcp_header(1234, 80), options);
        const PacketView view = decode_whole(packet);
        CHECK(view.status == DecodeStatus::ok);
        CHECK(view.ports == PortsAbsence::present);
        CHECK(view.sport == 1234);
        CHECK(view.dport == 80);
        CHECK(view.ip_length == packet.size());
    }
}

TEST_CASE("ipv4 options beyond the captured bytes")
{
    const Bytes packet = ipv4_packet(ipproto::tcp, tcp_header(1234, 80), Bytes(40, 1));
    for (std::size_t n = 20; n < 60 + 20; ++n) {
        CAPTURE(n);
        const PacketView view = decode_prefix(packet, n, static_cast<std::uint32_t>(packet.size()));
        CHECK(view.status == DecodeStatus::ok);
        CHECK(view.protocol == ipproto::tcp);
        CHECK(view.src == expected_address(Family::ipv4, true));
        CHECK(view.ports == PortsAbsence::not_captured);
    }
}

TEST_CASE("ipv4 header length below 5")
{
    for (std::uint8_t ihl = 0; ihl < 5; ++ihl) {
        CAPTURE(int{ihl});
        Bytes packet = ipv4_packet(ipproto::tcp, tcp_header(1, 2));
        packet[0] = static_cast<std::uint8_t>(0x40 | ihl);
        CHECK(decode_whole(packet).status == DecodeStatus::bad_ipv4_header_length);
    }
}

TEST_CASE("ipv4 header length beyond the wire length")
{
    Bytes packet = ipv4_packet(ipproto::udp, udp_datagram(1, 2));
    packet[0] = 0x4f; // 60 bytes of header in a 28-byte packet
    CHECK(decode_whole(packet).status == DecodeStatus::bad_ipv4_header_length);
}

TEST_CASE("ipv4 total length invalid")
{
    const Bytes valid = ipv4_packet(ipproto::tcp, tcp_header(1, 2), Bytes(4, 1));
    const std::uint32_t wire = static_cast<std::uint32_t>(valid.size());

    SUBCASE("below the header length")
    {
        for (std::size_t total : {0, 1, 19, 20, 23}) {
            CAPTURE(total);
            Bytes packet = valid;
            put_be16(packet, 2, total);
            CHECK(decode_whole(packet).status == DecodeStatus::bad_ipv4_total_length);
        }
    }
    SUBCASE("above the wire length")
    {
        Bytes packet = valid;
        put_be16(packet, 2, wire + 1);
        CHECK(decode_whole(packet).status == DecodeStatus::bad_ipv4_total_length);
        put_be16(packet, 2, 65535);
        CHECK(decode_whole(packet).status == DecodeStatus::bad_ipv4_total_length);
    }
    SUBCASE("zero within 65535 wire bytes")
    {
        Bytes packet = valid;
        put_be16(packet, 2, 0);
        CHECK(decode_prefix(packet, packet.size(), 65535).status ==
              DecodeStatus::bad_ipv4_total_length);
    }
}

TEST_CASE("ipv4 total length zero in a GSO packet")
{
    Bytes packet = ipv4_packet(ipproto::tcp, tcp_header(5201, 40000));
    put_be16(packet, 2, 0);
    const PacketView view = decode_prefix(packet, packet.size(), 70000);
    CHECK(view.status == DecodeStatus::ok);
    CHECK(view.ip_length == 70000);
    CHECK(view.ports == PortsAbsence::present);
    CHECK(view.sport == 5201);
    CHECK(view.dport == 40000);
}

// ---- IPv6 header ----

TEST_CASE("ipv6 payload length beyond the wire length")
{
    const Bytes packet = ipv6_packet(ipproto::tcp, tcp_header(1, 2));
    for (std::uint32_t wire = 40; wire < packet.size(); ++wire) {
        CAPTURE(wire);
        CHECK(decode_prefix(packet, wire, wire).status == DecodeStatus::bad_ipv6_payload_length);
    }
}

TEST_CASE("ipv6 payload length zero in a jumbogram or GSO packet")
{
    Bytes packet = ipv6_packet(ipproto::tcp, tcp_header(443, 50000));
    put_be16(packet, 4, 0);
    const PacketView view = decode_prefix(packet, packet.size(), 100000);
    CHECK(view.status == DecodeStatus::ok);
    CHECK(view.ip_length == 100000);
    CHECK(view.ports == PortsAbsence::present);
    CHECK(view.sport == 443);
}

TEST_CASE("ipv6 payload length zero with no payload")
{
    const PacketView none = decode_whole(ipv6_packet(ipproto::no_next_header, {}));
    CHECK(none.status == DecodeStatus::ok);
    CHECK(none.ip_length == 40);
    CHECK(none.ports == PortsAbsence::no_ports_in_protocol);

    const PacketView tcp = decode_whole(ipv6_packet(ipproto::tcp, {}));
    CHECK(tcp.status == DecodeStatus::truncated_transport);
}

TEST_CASE("udp length zero only in an ipv6 jumbogram")
{
    for (Family family : both_families) {
        CAPTURE(family);
        Bytes packet = ip_packet(family, ipproto::udp, udp_datagram(1, 2, 4));
        put_be16(packet, ip_header_length(family) + 4, 0);
        CHECK(decode_whole(packet).status == DecodeStatus::bad_udp_length);
    }

    Bytes jumbo = ipv6_packet(ipproto::udp, udp_datagram(4791, 4791, 4));
    put_be16(jumbo, 4, 0);
    put_be16(jumbo, 44, 0);
    const PacketView view = decode_prefix(jumbo, jumbo.size(), 70000);
    CHECK(view.status == DecodeStatus::ok);
    CHECK(view.ports == PortsAbsence::present);
    CHECK(view.dport == 4791);
}

// ---- Padding and truncation ----

TEST_CASE("bytes past the ip length are padding")
{
    for (Family family : both_families) {
        CAPTURE(family);
        const Bytes packet = ip_packet(family, ipproto::udp, udp_datagram(1, 2));
        const Bytes padded = concat({packet, Bytes(18, 0)});
        const PacketView view = decode_whole(padded);
        CHECK(view.status == DecodeStatus::ok);
        CHECK(view.ip_length == packet.size());
        CHECK(view.ports == PortsAbsence::present);
    }
}

TEST_CASE("padding is not read as a transport header")
{
    for (Family family : both_families) {
        CAPTURE(family);
        // The IP length ends 4 bytes into the TCP header; padding fills the rest.
        Bytes packet = ip_packet(family, ipproto::tcp, tcp_header(1, 2));
        set_ip_length(packet, family, ip_header_length(family) + 4);
        CHECK(decode_whole(packet).status == DecodeStatus::truncated_transport);
    }
}

TEST_CASE("capture cut at every byte keeps lengths valid")
{
    // Only the capture is short: the packet is well formed, its ports not captured.
    for (Family family : both_families) {
        std::vector<PortCase> cases = port_cases();
        cases.push_back({"icmp", icmp_protocol(family), icmp_header(8, 0),
                         icmp_min_header_length(family), 0, 0});
        for (const PortCase& c : cases) {
            const Bytes packet = ip_packet(family, c.protocol, c.header);
            const std::size_t transport_at = ip_header_length(family);
            const bool is_icmp = c.protocol == icmp_protocol(family);
            for (std::size_t n = 0; n < packet.size(); ++n) {
                CAPTURE(family);
                CAPTURE(c.name);
                CAPTURE(n);
                const PacketView view =
                    decode_prefix(packet, n, static_cast<std::uint32_t>(packet.size()));
                if (n < transport_at) {
                    CHECK(view.status == DecodeStatus::truncated_ip);
                    continue;
                }
                CHECK(view.status == DecodeStatus::ok);
                CHECK(view.ip_length == packet.size());
                const bool header_captured = n >= transport_at + c.min_header_length;
                if (is_icmp) {
                    CHECK(view.ports == PortsAbsence::no_ports_in_protocol);
                    CHECK(view.has_icmp == header_captured);
                } else {
                    CHECK(view.ports == (header_captured ? PortsAbsence::present
                                                         : PortsAbsence::not_captured));
                }
            }
        }
    }
}

TEST_CASE("packet cut at every byte by its own length")
{
    // The IP length ends the packet early, and a transport header cut short is malformed.
    for (Family family : both_families) {
        std::vector<PortCase> cases = {
            {"tcp", ipproto::tcp, tcp_header(1, 2), 20, 1, 2},
            {"udp", ipproto::udp, udp_datagram(1, 2), 8, 1, 2},
            {"udplite", ipproto::udplite, udplite_header(1, 2, 0), 8, 1, 2},
            {"sctp", ipproto::sctp, sctp_header(1, 2), 12, 1, 2},
            {"icmp", icmp_protocol(family), icmp_header(8, 0, icmp_min_header_length(family)),
             icmp_min_header_length(family), 0, 0},
        };
        for (const PortCase& c : cases) {
            const Bytes packet = ip_packet(family, c.protocol, c.header);
            for (std::size_t n = 0; n < packet.size(); ++n) {
                CAPTURE(family);
                CAPTURE(c.name);
                CAPTURE(n);
                Bytes cut(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(n));
                if (n < ip_header_length(family)) {
                    CHECK(decode_whole(cut).status == DecodeStatus::truncated_ip);
                    continue;
                }
                // With the length fields unchanged, they claim more than the wire carries.
                CHECK(decode_whole(cut).status ==
                      (family == Family::ipv4 ? DecodeStatus::bad_ipv4_total_length
                                              : DecodeStatus::bad_ipv6_payload_length));
                set_ip_length(cut, family, n);
                CHECK(decode_whole(cut).status == DecodeStatus::truncated_transport);
            }
        }
    }
}

// ---- TCP, UDP and UDP-Lite fields ----

TEST_CASE("tcp data offset checked")
{
    for (Family family : both_families) {
        CAPTURE(family);
        const std::size_t offset_at = ip_header_length(family) + 12;
        for (std::uint8_t words = 0; words < 5; ++words) {
            CAPTURE(int{words});
            Bytes packet = ip_packet(family, ipproto::tcp, tcp_header(1, 2));
            packet[offset_at] = static_cast<std::uint8_t>(words << 4);
            CHECK(decode_whole(packet).status == DecodeStatus::bad_tcp_data_offset);
        }

        Bytes beyond = ip_packet(family, ipproto::tcp, tcp_header(1, 2, 6));
        beyond[offset_at] = 7 << 4;
        CHECK(decode_whole(beyond).status == DecodeStatus::bad_tcp_data_offset);

        const PacketView longest = decode_whole(ip_packet(family, ipproto::tcp,
                                                          tcp_header(1, 2, 15)));
        CHECK(longest.status == DecodeStatus::ok);
        CHECK(longest.ports == PortsAbsence::present);
    }
}

TEST_CASE("udp length checked")
{
    for (Family family : both_families) {
        CAPTURE(family);
        const std::size_t length_at = ip_header_length(family) + 4;
        for (std::size_t length : {1, 7, 13, 65535}) {
            CAPTURE(length);
            Bytes packet = ip_packet(family, ipproto::udp, udp_datagram(1, 2, 4));
            put_be16(packet, length_at, length);
            CHECK(decode_whole(packet).status == DecodeStatus::bad_udp_length);
        }
        // A UDP length shorter than the IP payload leaves trailing bytes, which is valid.
        Bytes shorter = ip_packet(family, ipproto::udp, udp_datagram(1, 2, 4));
        put_be16(shorter, length_at, 8);
        CHECK(decode_whole(shorter).status == DecodeStatus::ok);
    }
}

TEST_CASE("udplite coverage checked")
{
    for (Family family : both_families) {
        CAPTURE(family);
        for (std::uint16_t coverage : {0, 8, 12}) {
            CAPTURE(coverage);
            const Bytes packet =
                ip_packet(family, ipproto::udplite,
                          concat({udplite_header(7, 9, coverage), Bytes(4, 0)}));
            const PacketView view = decode_whole(packet);
            CHECK(view.status == DecodeStatus::ok);
            CHECK(view.sport == 7);
            CHECK(view.dport == 9);
        }
        for (std::uint16_t coverage : {1, 7, 13}) {
            CAPTURE(coverage);
            const Bytes packet =
                ip_packet(family, ipproto::udplite,
                          concat({udplite_header(7, 9, coverage), Bytes(4, 0)}));
            CHECK(decode_whole(packet).status == DecodeStatus::bad_udplite_coverage);
        }
    }
}

// ---- Fragments ----

TEST_CASE("first fragment gives ports")
{
    for (Family family : both_families) {
        CAPTURE(family);
        const PacketView view =
            decode_whole(fragment_packet(family, ipproto::tcp, tcp_header(1000, 22), 0, true));
        CHECK(view.status == DecodeStatus::ok);
        CHECK(view.fragment);
        CHECK(view.protocol == ipproto::tcp);
        CHECK(view.ports == PortsAbsence::present);
        CHECK(view.sport == 1000);
        CHECK(view.dport == 22);
    }
}

TEST_CASE("first fragment shorter than the transport header")
{
    for (Family family : both_families) {
        CAPTURE(family);
        Bytes part = tcp_header(1000, 22);
        part.resize(16);
        const PacketView view = decode_whole(fragment_packet(family, ipproto::tcp, part, 0, true));
        CHECK(view.status == DecodeStatus::ok);
        CHECK(view.fragment);
        CHECK(view.ports == PortsAbsence::not_captured);
    }
}

TEST_CASE("first fragment lengths that span later fragments")
{
    for (Family family : both_families) {
        CAPTURE(family);
        // TCP options and the UDP datagram continue in the next fragment.
        Bytes tcp = tcp_header(1000, 22);
        tcp[12] = 10 << 4;
        const PacketView tcp_view =
            decode_whole(fragment_packet(family, ipproto::tcp, tcp, 0, true));
        CHECK(tcp_view.status == DecodeStatus::ok);
        CHECK(tcp_view.ports == PortsAbsence::present);

        Bytes udp = udp_datagram(53, 53, 8);
        put_be16(udp, 4, 1400);
        const PacketView udp_view =
            decode_whole(fragment_packet(family, ipproto::udp, udp, 0, true));
        CHECK(udp_view.status == DecodeStatus::ok);
        CHECK(udp_view.ports == PortsAbsence::present);
    }
}

TEST_CASE("later fragment has no ports")
{
    for (Family family : both_families) {
        for (std::uint16_t offset : {1, 185, 8191}) {
            for (bool more : {false, true}) {
                CAPTURE(family);
                CAPTURE(offset);
                CAPTURE(more);
                const PacketView view = decode_whole(
                    fragment_packet(family, ipproto::tcp, tcp_header(1, 2), offset, more));
                CHECK(view.status == DecodeStatus::ok);
                CHECK(view.fragment);
                CHECK(view.protocol == ipproto::tcp);
                CHECK(view.ports == PortsAbsence::later_fragment);
                CHECK_FALSE(view.has_ports());
            }
        }
        const PacketView icmp = decode_whole(
            fragment_packet(family, icmp_protocol(family), icmp_header(8, 0), 100, false));
        CHECK(icmp.status == DecodeStatus::ok);
        CHECK(icmp.ports == PortsAbsence::later_fragment);
        CHECK_FALSE(icmp.has_icmp);
    }
}

TEST_CASE("unfragmented packet is not a fragment")
{
    // IPv4 with only DF set, and an IPv6 atomic fragment (offset 0, M clear).
    const PacketView dont_fragment =
        decode_whole(ipv4_packet(ipproto::tcp, tcp_header(1, 2), {}, 0x4000));
    CHECK_FALSE(dont_fragment.fragment);
    CHECK(dont_fragment.ports == PortsAbsence::present);

    const PacketView atomic =
        decode_whole(fragment_packet(Family::ipv6, ipproto::tcp, tcp_header(1, 2), 0, false));
    CHECK(atomic.status == DecodeStatus::ok);
    CHECK_FALSE(atomic.fragment);
    CHECK(atomic.ports == PortsAbsence::present);
}

// ---- IPv6 extension headers ----

TEST_CASE("ipv6 chain of hop-by-hop, routing and destination options")
{
    const Bytes chain = concat({options_header(ipproto::routing, 0),
                                options_header(ipproto::dstopts, 2),
                                options_header(ipproto::tcp, 1), tcp_header(33000, 8443)});
    const Bytes packet = ipv6_packet(ipproto::hopopts, chain);
    const PacketView view = decode_whole(packet);
    CHECK(view.status == DecodeStatus::ok);
    CHECK(view.protocol == ipproto::tcp);
    CHECK(view.ports == PortsAbsence::present);
    CHECK(view.sport == 33000);
    CHECK(view.dport == 8443);
    CHECK(view.ip_length == packet.size());
    CHECK_FALSE(view.fragment);
}

TEST_CASE("ipv6 authentication header counts 4-byte units")
{
    for (std::uint8_t length_field : {1, 4, 7}) {
        CAPTURE(int{length_field});
        const Bytes packet = ipv6_packet(
            ipproto::ah, concat({ah_header(ipproto::udp, length_field), udp_datagram(500, 4500)}));
        const PacketView view = decode_whole(packet);
        CHECK(view.status == DecodeStatus::ok);
        CHECK(view.protocol == ipproto::udp);
        CHECK(view.sport == 500);
        CHECK(view.dport == 4500);
    }
}

TEST_CASE("ipv6 fragment header inside a chain")
{
    const Bytes first = ipv6_packet(
        ipproto::hopopts, concat({options_header(ipproto::fragment),
                                  fragment_header(ipproto::udp, 0, true), udp_datagram(9, 10)}));
    const PacketView first_view = decode_whole(first);
    CHECK(first_view.status == DecodeStatus::ok);
    CHECK(first_view.fragment);
    CHECK(first_view.ports == PortsAbsence::present);
    CHECK(first_view.dport == 10);

    // A later fragment names the first header of the fragmentable part, here destination
    // options.
    const Bytes later = ipv6_packet(
        ipproto::hopopts, concat({options_header(ipproto::fragment),
                                  fragment_header(ipproto::dstopts, 3, true), Bytes(24, 0)}));
    const PacketView later_view = decode_whole(later);
    CHECK(later_view.status == DecodeStatus::ok);
    CHECK(later_view.protocol == ipproto::dstopts);
    CHECK(later_view.ports == PortsAbsence::later_fragment);
}

TEST_CASE("ipv6 chain bound")
{
    auto dstopts_chain = [](int count) {
        Bytes chain;
        for (int i = 0; i < count; ++i) {
            const std::uint8_t next = i + 1 < count ? ipproto::dstopts : ipproto::tcp;
            chain = concat({chain, options_header(next)});
        }
        return ipv6_packet(ipproto::dstopts, concat({chain, tcp_header(1, 2)}));
    };

    const PacketView eight = decode_whole(dstopts_chain(8));
    CHECK(eight.status == DecodeStatus::ok);
    CHECK(eight.ports == PortsAbsence::present);

    const PacketView nine = decode_whole(dstopts_chain(9));
    CHECK(nine.status == DecodeStatus::extension_chain_too_long);
    CHECK(nine.protocol == ipproto::dstopts);
}

TEST_CASE("ipv6 esp and no next header end the chain")
{
    const PacketView esp = decode_whole(ipv6_packet(
        ipproto::hopopts, concat({options_header(ipproto::esp), Bytes(32, 0xee)})));
    CHECK(esp.status == DecodeStatus::ok);
    CHECK(esp.protocol == ipproto::esp);
    CHECK(esp.ports == PortsAbsence::no_ports_in_protocol);

    // The bytes after ESP look like a TCP header but are encrypted payload.
    const PacketView esp_then_bytes =
        decode_whole(ipv6_packet(ipproto::esp, tcp_header(1, 2)));
    CHECK(esp_then_bytes.protocol == ipproto::esp);
    CHECK(esp_then_bytes.ports == PortsAbsence::no_ports_in_protocol);

    const PacketView none = decode_whole(ipv6_packet(
        ipproto::dstopts, concat({options_header(ipproto::no_next_header), Bytes(8, 0)})));
    CHECK(none.status == DecodeStatus::ok);
    CHECK(none.protocol == ipproto::no_next_header);
    CHECK(none.ports == PortsAbsence::no_ports_in_protocol);
}

TEST_CASE("ipv6 extension header cut short by the payload length")
{
    // A 24-byte hop-by-hop header in a 16-byte payload, then a payload of one byte.
    Bytes packet = ipv6_packet(ipproto::hopopts, concat({options_header(ipproto::tcp, 2)}));
    put_be16(packet, 4, 16);
    packet.resize(56);
    CHECK(decode_whole(packet).status == DecodeStatus::truncated_extension);

    put_be16(packet, 4, 1);
    packet.resize(41);
    CHECK(decode_whole(packet).status == DecodeStatus::truncated_extension);

    const Bytes short_fragment =
        ipv6_packet(ipproto::fragment, Bytes{ipproto::tcp, 0, 0, 0, 0, 0});
    CHECK(decode_whole(short_fragment).status == DecodeStatus::truncated_extension);
}

TEST_CASE("ipv6 chain cut at every byte")
{
    const Bytes chain = concat({options_header(ipproto::routing, 1),
                                options_header(ipproto::fragment, 0),
                                fragment_header(ipproto::ah, 0, false),
                                ah_header(ipproto::tcp, 4), tcp_header(2000, 3000)});
    const Bytes packet = ipv6_packet(ipproto::hopopts, chain);
    const std::size_t tcp_at = packet.size() - 20;
    // The upper protocol is known once the next header byte of the AH header at 72 is read.
    const std::size_t protocol_known_at = 74;
    REQUIRE(decode_whole(packet).ports == PortsAbsence::present);

    for (std::size_t n = 40; n < packet.size(); ++n) {
        CAPTURE(n);
        // Capture cut: an extension header not captured hides the upper protocol.
        const PacketView captured =
            decode_prefix(packet, n, static_cast<std::uint32_t>(packet.size()));
        if (n < protocol_known_at) {
            CHECK(captured.status == DecodeStatus::extension_not_captured);
        } else {
            CHECK(captured.status == DecodeStatus::ok);
            CHECK(captured.protocol == ipproto::tcp);
            CHECK(captured.ports == PortsAbsence::not_captured);
        }

        // Length cut: the packet's own payload length ends inside the chain.
        Bytes cut(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(n));
        set_ip_length(cut, Family::ipv6, n);
        const DecodeStatus expected = n < tcp_at ? DecodeStatus::truncated_extension
                                                 : DecodeStatus::truncated_transport;
        if (n == 40) {
            // Payload length 0 with nothing after the header: the hop-by-hop header is missing.
            CHECK(decode_whole(cut).status == DecodeStatus::truncated_extension);
            continue;
        }
        CHECK(decode_whole(cut).status == expected);
    }
}

// ---- Link layers ----

namespace {

Bytes ethernet_header(std::initializer_list<std::uint16_t> types)
{
    Bytes frame = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
    bool first = true;
    for (std::uint16_t type : types) {
        if (!first) {
            frame.push_back(0x00); // priority and VLAN id 7 of the tag before
            frame.push_back(0x07);
        }
        frame.push_back(static_cast<std::uint8_t>(type >> 8));
        frame.push_back(static_cast<std::uint8_t>(type));
        first = false;
    }
    return frame;
}

std::uint16_t ethertype_of(Family family)
{
    return family == Family::ipv4 ? 0x0800 : 0x86dd;
}

Bytes sll_header(std::uint16_t protocol)
{
    Bytes header = {0, 0, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    put_be16(header, 14, protocol);
    return header;
}

Bytes sll2_header(std::uint16_t protocol)
{
    Bytes header = {0, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0};
    put_be16(header, 0, protocol);
    return header;
}

// Strip the link layer and decode what follows, as the replay driver does.
PacketView decode_frame(LinkType link_type, const Bytes& frame)
{
    const LinkResult link = strip_link(static_cast<std::uint32_t>(link_type), frame);
    REQUIRE(link.kind == LinkResult::Kind::ip);
    const std::span<const std::uint8_t> ip = std::span(frame).subspan(link.ip_offset);
    return decode_ip(ip, static_cast<std::uint32_t>(ip.size()));
}

} // namespace

TEST_CASE("ethernet with stacked vlan tags")
{
    struct TagCase {
        std::initializer_list<std::uint16_t> tags;
        std::uint32_t ip_offset;
    };
    const TagCase cases[] = {
        {{}, 14},
        {{0x8100}, 18},
        {{0x88a8, 0x8100}, 22},
        {{0x9100, 0x8100}, 22},
        {{0x8100, 0x8100, 0x8100}, 26},
    };
    for (Family family : both_families) {
        for (const TagCase& c : cases) {
            CAPTURE(family);
            CAPTURE(c.ip_offset);
            std::vector<std::uint16_t> types(c.tags);
            types.push_back(ethertype_of(family));
            Bytes frame = ethernet_header({});
            frame.resize(12);
            for (std::size_t i = 0; i < types.size(); ++i) {
                frame.push_back(static_cast<std::uint8_t>(types[i] >> 8));
                frame.push_back(static_cast<std::uint8_t>(types[i]));
                if (i + 1 < types.size()) {
                    frame.push_back(0x00);
                    frame.push_back(0x07);
                }
            }
            frame = concat({frame, ip_packet(family, ipproto::udp, udp_datagram(67, 68))});
            const LinkResult link = strip_copy(LinkType::ethernet, frame, frame.size());
            CHECK(link.kind == LinkResult::Kind::ip);
            CHECK(link.ip_offset == c.ip_offset);
            const PacketView view = decode_frame(LinkType::ethernet, frame);
            CHECK(view.status == DecodeStatus::ok);
            CHECK(view.family == family);
            CHECK(view.dport == 68);
        }
    }
}

TEST_CASE("ethernet vlan tag bound")
{
    auto tagged = [](int tags) {
        Bytes frame = ethernet_header({0x8100});
        for (int i = 1; i < tags; ++i)
            frame = concat({frame, Bytes{0x00, 0x07, 0x81, 0x00}});
        return concat({frame, Bytes{0x00, 0x07, 0x08, 0x00},
                       ipv4_packet(ipproto::udp, udp_datagram(1, 2))});
    };
    const Bytes sixteen = tagged(16);
    const LinkResult accepted = strip_copy(LinkType::ethernet, sixteen, sixteen.size());
    CHECK(accepted.kind == LinkResult::Kind::ip);
    CHECK(accepted.ip_offset == 14 + 16 * 4);

    const Bytes seventeen = tagged(17);
    CHECK(strip_copy(LinkType::ethernet, seventeen, seventeen.size()).kind ==
          LinkResult::Kind::not_ip);
}

TEST_CASE("ethernet frames that carry no ip")
{
    const Bytes arp = concat({ethernet_header({0x0806}), Bytes(28, 0)});
    CHECK(strip_copy(LinkType::ethernet, arp, arp.size()).kind == LinkResult::Kind::not_ip);

    const Bytes tagged_arp = concat({ethernet_header({0x88a8, 0x8100, 0x0806}), Bytes(28, 0)});
    CHECK(strip_copy(LinkType::ethernet, tagged_arp, tagged_arp.size()).kind ==
          LinkResult::Kind::not_ip);

    // An 802.3 frame: the type field is a length, here 46.
    const Bytes length_frame = concat({ethernet_header({46}), Bytes(46, 0x42)});
    CHECK(strip_copy(LinkType::ethernet, length_frame, length_frame.size()).kind ==
          LinkResult::Kind::not_ip);
}

TEST_CASE("ethernet frame cut at every byte")
{
    const Bytes frame = concat({ethernet_header({0x88a8, 0x8100, 0x86dd}),
                                ipv6_packet(ipproto::tcp, tcp_header(1, 2))});
    for (std::size_t n = 0; n < 22; ++n) {
        CAPTURE(n);
        CHECK(strip_copy(LinkType::ethernet, frame, n).kind == LinkResult::Kind::truncated);
    }
    const LinkResult at_ip = strip_copy(LinkType::ethernet, frame, 22);
    CHECK(at_ip.kind == LinkResult::Kind::ip);
    CHECK(at_ip.ip_offset == 22);
}

TEST_CASE("linux cooked capture v1 and v2")
{
    for (Family family : both_families) {
        CAPTURE(family);
        const Bytes packet = ip_packet(family, ipproto::tcp, tcp_header(1, 2));

        const Bytes sll = concat({sll_header(ethertype_of(family)), packet});
        const LinkResult sll_link = strip_copy(LinkType::linux_sll, sll, sll.size());
        CHECK(sll_link.kind == LinkResult::Kind::ip);
        CHECK(sll_link.ip_offset == 16);
        CHECK(decode_frame(LinkType::linux_sll, sll).family == family);

        const Bytes sll2 = concat({sll2_header(ethertype_of(family)), packet});
        const LinkResult sll2_link = strip_copy(LinkType::linux_sll2, sll2, sll2.size());
        CHECK(sll2_link.kind == LinkResult::Kind::ip);
        CHECK(sll2_link.ip_offset == 20);
        CHECK(decode_frame(LinkType::linux_sll2, sll2).family == family);
    }

    const Bytes tagged = concat({sll_header(0x8100), Bytes{0x00, 0x07, 0x08, 0x00},
                                 ipv4_packet(ipproto::udp, udp_datagram(1, 2))});
    const LinkResult tagged_link = strip_copy(LinkType::linux_sll, tagged, tagged.size());
    CHECK(tagged_link.kind == LinkResult::Kind::ip);
    CHECK(tagged_link.ip_offset == 20);

    const Bytes arp = concat({sll2_header(0x0806), Bytes(28, 0)});
    CHECK(strip_copy(LinkType::linux_sll2, arp, arp.size()).kind == LinkResult::Kind::not_ip);

    const Bytes sll = concat({sll_header(0x0800), ipv4_packet(ipproto::udp, udp_datagram(1, 2))});
    for (std::size_t n = 0; n < 16; ++n) {
        CAPTURE(n);
        CHECK(strip_copy(LinkType::linux_sll, sll, n).kind == LinkResult::Kind::truncated);
    }
    const Bytes sll2 = concat({sll2_header(0x0800), ipv4_packet(ipproto::udp, udp_datagram(1, 2))});
    for (std::size_t n = 0; n < 20; ++n) {
        CAPTURE(n);
        CHECK(strip_copy(LinkType::linux_sll2, sll2, n).kind == LinkResult::Kind::truncated);
    }
}

TEST_CASE("bsd loopback in both byte orders")
{
    const Bytes ipv4 = ipv4_packet(ipproto::udp, udp_datagram(1, 2));
    const Bytes ipv6 = ipv6_packet(ipproto::udp, udp_datagram(1, 2));
    for (std::uint8_t family_value : {2, 24, 28, 30}) {
        CAPTURE(int{family_value});
        const Bytes& packet = family_value == 2 ? ipv4 : ipv6;
        const Bytes little = concat({Bytes{family_value, 0, 0, 0}, packet});
        const Bytes big = concat({Bytes{0, 0, 0, family_value}, packet});

        for (const Bytes* frame : {&little, &big}) {
            const LinkResult link = strip_copy(LinkType::null_bsd, *frame, frame->size());
            CHECK(link.kind == LinkResult::Kind::ip);
            CHECK(link.ip_offset == 4);
        }
        // LOOP stores the family in network byte order only.
        CHECK(strip_copy(LinkType::loop, big, big.size()).kind == LinkResult::Kind::ip);
        CHECK(strip_copy(LinkType::loop, little, little.size()).kind == LinkResult::Kind::not_ip);
    }

    const Bytes osi = concat({Bytes{7, 0, 0, 0}, Bytes(20, 0)});
    CHECK(strip_copy(LinkType::null_bsd, osi, osi.size()).kind == LinkResult::Kind::not_ip);
    for (std::size_t n = 0; n < 4; ++n) {
        CAPTURE(n);
        const Bytes frame = concat({Bytes{2, 0, 0, 0}, ipv4});
        CHECK(strip_copy(LinkType::null_bsd, frame, n).kind == LinkResult::Kind::truncated);
        CHECK(strip_copy(LinkType::loop, frame, n).kind == LinkResult::Kind::truncated);
    }
}

TEST_CASE("raw link types start at the ip header")
{
    const Bytes packet = ipv6_packet(ipproto::udp, udp_datagram(1, 2));
    for (LinkType type : {LinkType::raw, LinkType::ipv4, LinkType::ipv6}) {
        CAPTURE(static_cast<int>(type));
        const LinkResult link = strip_copy(type, packet, packet.size());
        CHECK(link.kind == LinkResult::Kind::ip);
        CHECK(link.ip_offset == 0);
        // An empty frame reaches decode_ip, which reports it.
        const LinkResult empty = strip_copy(type, packet, 0);
        CHECK(empty.kind == LinkResult::Kind::ip);
    }
}

TEST_CASE("link type support")
{
    for (std::uint32_t type : {0u, 1u, 101u, 108u, 113u, 228u, 229u, 276u}) {
        CAPTURE(type);
        CHECK(link_type_supported(type));
    }
    for (std::uint32_t type : {2u, 105u, 127u, 0x30000065u}) {
        CAPTURE(type);
        CHECK_FALSE(link_type_supported(type));
        const Bytes frame = ipv4_packet(ipproto::udp, udp_datagram(1, 2));
        CHECK(strip_link(type, frame).kind == LinkResult::Kind::not_ip);
    }
}

// ---- Header bytes from real captures ----
//
// Each fixture is the start of one frame from a public capture, with the frame's wire
// length from its capture record.

namespace {

struct CapturedFrame {
    LinkType link_type;
    Bytes bytes;
    std::uint32_t wire_length;
};

PacketView decode_captured(const CapturedFrame& frame)
{
    const LinkResult link = strip_link(static_cast<std::uint32_t>(frame.link_type), frame.bytes);
    REQUIRE(link.kind == LinkResult::Kind::ip);
    const std::span<const std::uint8_t> ip = std::span(frame.bytes).subspan(link.ip_offset);
    return decode_ip(ip, frame.wire_length - link.ip_offset);
}

} // namespace

TEST_CASE("capture: ipv4 big tcp with total length zero")
{
    // Ethernet, IPv4 total length 0, TCP 10.25.132.13:35871 -> 10.25.132.11:36425.
    const CapturedFrame frame = {LinkType::ethernet,
                                 {0x06, 0x00, 0xde, 0xad, 0xbe, 0xef, 0xb8, 0xce, 0xf6, 0x04,
                                  0x8b, 0x14, 0x08, 0x00, 0x45, 0x00, 0x00, 0x00, 0x2e, 0xff,
                                  0x40, 0x00, 0x40, 0x06, 0xef, 0xae, 0x0a, 0x19, 0x84, 0x0d,
                                  0x0a, 0x19, 0x84, 0x0b, 0x8c, 0x1f, 0x8e, 0x49, 0xf7, 0xad,
                                  0xbd, 0x8e, 0x01, 0x03, 0xc2, 0x25, 0x80, 0x18, 0x02, 0x7b,
                                  0x54, 0xf2, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0xe9, 0xb7,
                                  0xeb, 0x15, 0xbb, 0xed, 0xeb, 0x2f},
                                 80066};
    const PacketView view = decode_captured(frame);
    CHECK(view.status == DecodeStatus::ok);
    CHECK(view.ip_length == 80066 - 14);
    CHECK(view.protocol == ipproto::tcp);
    CHECK(view.sport == 35871);
    CHECK(view.dport == 36425);
}

TEST_CASE("capture: ipv4 fragmented syn")
{
    // The first fragment carries 24 of the 40 bytes of TCP header.
    const CapturedFrame first = {LinkType::ethernet,
                                 {0x1e, 0x0b, 0x8b, 0x14, 0xf6, 0xf9, 0x98, 0xee, 0xcb, 0xbd,
                                  0x07, 0xfe, 0x08, 0x00, 0x45, 0x00, 0x00, 0x2c, 0x00, 0x01,
                                  0x20, 0x00, 0x40, 0x06, 0x8e, 0xba, 0xc0, 0xa8, 0x01, 0x64,
                                  0x0a, 0x00, 0x00, 0x05, 0x30, 0x39, 0x00, 0x50, 0x00, 0x00,
                                  0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0x20, 0x00,
                                  0xc5, 0x73, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4},
                                 58};
    const PacketView first_view = decode_captured(first);
    CHECK(first_view.status == DecodeStatus::ok);
    CHECK(first_view.fragment);
    CHECK(first_view.ports == PortsAbsence::present);
    CHECK(first_view.sport == 12345);
    CHECK(first_view.dport == 80);

    const CapturedFrame second = {LinkType::ethernet,
                                  {0x1e, 0x0b, 0x8b, 0x14, 0xf6, 0xf9, 0x98, 0xee, 0xcb, 0xbd,
                                   0x07, 0xfe, 0x08, 0x00, 0x45, 0x00, 0x00, 0x24, 0x00, 0x01,
                                   0x00, 0x03, 0x40, 0x06, 0xae, 0xbf, 0xc0, 0xa8, 0x01, 0x64,
                                   0x0a, 0x00, 0x00, 0x05, 0x04, 0x02, 0x08, 0x0a, 0x00, 0xbc,
                                   0x61, 0x4e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07},
                                  50};
    const PacketView second_view = decode_captured(second);
    CHECK(second_view.status == DecodeStatus::ok);
    CHECK(second_view.ports == PortsAbsence::later_fragment);
}

TEST_CASE("capture: ipv4 header length 16")
{
    const CapturedFrame frame = {LinkType::ethernet,
                                 {0xc0, 0xd6, 0x82, 0x36, 0x03, 0x2b, 0xf0, 0x4d, 0xa2, 0x3d,
                                  0x5d, 0xa3, 0x08, 0x00, 0x44, 0x00, 0x00, 0x54, 0xf1, 0xa6,
                                  0x00, 0x00, 0x40, 0x11, 0x45, 0x94, 0x8c, 0xd3, 0x09, 0xce,
                                  0x2d, 0x21, 0x7f, 0x9c},
                                 98};
    CHECK(decode_captured(frame).status == DecodeStatus::bad_ipv4_header_length);
}

TEST_CASE("capture: ipv4 total length ends before the transport header")
{
    // Total length 20 with protocol TCP, then 20 with UDP, then 24 with 4 bytes of UDP.
    Bytes base = {0x49, 0xa2, 0x25, 0x1a, 0x07, 0x4a, 0xcb, 0xcf, 0x2b, 0x50, 0xa7, 0x61,
                  0x08, 0x00, 0x45, 0x00, 0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x40, 0x06,
                  0x74, 0xde, 0x01, 0x01, 0x01, 0x01, 0x02, 0x02, 0x02, 0x02};
    CHECK(decode_captured({LinkType::ethernet, base, 34}).status ==
          DecodeStatus::truncated_transport);

    base[23] = ipproto::udp;
    CHECK(decode_captured({LinkType::ethernet, base, 34}).status ==
          DecodeStatus::truncated_transport);

    Bytes udp4 = concat({base, Bytes{0x81, 0x58, 0x00, 0x35}});
    udp4[17] = 0x18;
    CHECK(decode_captured({LinkType::ethernet, udp4, 38}).status ==
          DecodeStatus::truncated_transport);
}

TEST_CASE("capture: one byte of a raw frame")
{
    // Snap length 1: version nibble 3.
    CHECK(decode_captured({LinkType::raw, {0x30}, 262144}).status ==
          DecodeStatus::bad_ip_version);
}

TEST_CASE("capture: linux cooked v1 tcp syn")
{
    const CapturedFrame frame = {LinkType::linux_sll,
                                 {0x00, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                  0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x45, 0x00, 0x00, 0x3c,
                                  0x29, 0xa9, 0x40, 0x00, 0x40, 0x06, 0xdb, 0x5f, 0x83, 0x9b,
                                  0xd7, 0x45, 0x89, 0x74, 0x51, 0x5e, 0xb6, 0x40, 0x00, 0x50,
                                  0x2f, 0x84, 0x2a, 0xcb, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02,
                                  0x6a, 0x40, 0x50, 0xc4, 0x00, 0x00},
                                 76};
    const PacketView view = decode_captured(frame);
    CHECK(view.status == DecodeStatus::ok);
    CHECK(view.sport == 46656);
    CHECK(view.dport == 80);
    // Only 56 of 76 bytes are in the fixture: the TCP options are not needed.
    CHECK(view.ip_length == 60);
}

TEST_CASE("capture: linux cooked v2 icmp and icmpv6 echo")
{
    const CapturedFrame ipv4 = {LinkType::linux_sll2,
                                {0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x04,
                                 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x45, 0x00, 0x00, 0x54, 0xaf, 0x8c, 0x40, 0x00, 0x40, 0x01,
                                 0x07, 0x1a, 0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x01,
                                 0x08, 0x00, 0x66, 0xb4, 0x00, 0x08, 0x00, 0x01},
                                104};
    const PacketView ipv4_view = decode_captured(ipv4);
    CHECK(ipv4_view.status == DecodeStatus::ok);
    CHECK(ipv4_view.has_icmp);
    CHECK(ipv4_view.icmp_type == 8);
    CHECK(ipv4_view.icmp_code == 0);

    const CapturedFrame ipv6 = {LinkType::linux_sll2,
                                {0x86, 0xdd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x04,
                                 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x60, 0x05, 0xc2, 0xe4, 0x00, 0x40, 0x3a, 0x40, 0xfe, 0x80,
                                 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8c, 0x36, 0x06, 0xff,
                                 0xfe, 0x44, 0xac, 0xaf, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x8c, 0x36, 0x06, 0xff, 0xfe, 0x44, 0xac, 0xaf,
                                 0x80, 0x00, 0xa8, 0xd7},
                                124};
    const PacketView ipv6_view = decode_captured(ipv6);
    CHECK(ipv6_view.status == DecodeStatus::ok);
    CHECK(ipv6_view.family == Family::ipv6);
    CHECK(ipv6_view.has_icmp);
    CHECK(ipv6_view.icmp_type == 128);
}

TEST_CASE("capture: three stacked 802.1Q tags")
{
    const CapturedFrame frame = {LinkType::ethernet,
                                 {0x00, 0x10, 0xdb, 0x88, 0xd2, 0xef, 0xc8, 0xbc, 0xc8, 0x96,
                                  0xd2, 0xa0, 0x81, 0x00, 0x00, 0x1e, 0x81, 0x00, 0x00, 0x14,
                                  0x81, 0x00, 0x00, 0x0a, 0x08, 0x00, 0x45, 0x00, 0x00, 0x40,
                                  0xdf, 0x8e, 0x40, 0x00, 0x40, 0x06, 0x6d, 0xd3, 0x8d, 0x8e,
                                  0xe4, 0x05, 0xc0, 0x96, 0xbb, 0x2b, 0xe9, 0xd0, 0x00, 0x50,
                                  0xfe, 0x21, 0x32, 0x3a, 0x00, 0x00, 0x00, 0x00, 0xb0, 0x02,
                                  0xff, 0xff, 0x3b, 0xc0, 0x00, 0x00},
                                 90};
    const PacketView view = decode_captured(frame);
    CHECK(view.status == DecodeStatus::ok);
    CHECK(view.sport == 59856);
    CHECK(view.dport == 80);
}

TEST_CASE("capture: 802.1ad arp is not ip")
{
    const Bytes frame = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x20, 0xd2, 0x5a,
                         0xfb, 0x3f, 0x88, 0xa8, 0x00, 0xc8, 0x81, 0x00, 0x07, 0xd1,
                         0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01};
    CHECK(strip_link(static_cast<std::uint32_t>(LinkType::ethernet), frame).kind ==
          LinkResult::Kind::not_ip);
}

TEST_CASE("capture: raw ipv6 fragments")
{
    const Bytes header = {0x60, 0x00, 0x00, 0x00, 0x01, 0xd8, 0x2c, 0x40, 0x00, 0x00, 0x00,
                          0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                          0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                          0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
    const Bytes first = concat({header, Bytes{0x06, 0x00, 0x00, 0x01, 0xa1, 0xbc, 0x65, 0x72,
                                              0x30, 0x39, 0x1f, 0x90, 0x00, 0x00, 0x00, 0x01,
                                              0x00, 0x00, 0x00, 0x00, 0x50, 0x10, 0x20, 0x00,
                                              0xc8, 0xad, 0x00, 0x00}});
    const PacketView first_view = decode_captured({LinkType::ipv6, first, 512});
    CHECK(first_view.status == DecodeStatus::ok);
    CHECK(first_view.fragment);
    CHECK(first_view.sport == 12345);
    CHECK(first_view.dport == 8080);

    const Bytes second = concat({header, Bytes{0x06, 0x00, 0x01, 0xd1, 0xa1, 0xbc, 0x65, 0x72,
                                               0x41, 0x41, 0x41, 0x41}});
    const PacketView second_view = decode_captured({LinkType::ipv6, second, 512});
    CHECK(second_view.status == DecodeStatus::ok);
    CHECK(second_view.protocol == ipproto::tcp);
    CHECK(second_view.ports == PortsAbsence::later_fragment);
}

TEST_CASE("capture: ipv6 routing header before icmpv6 and udp")
{
    const Bytes start = {0x00, 0x13, 0xc4, 0xc7, 0x84, 0xf0, 0x00, 0x12, 0x3f, 0xae, 0x22,
                         0xf7, 0x86, 0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x2b, 0x04,
                         0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x44, 0x02, 0x12, 0x3f,
                         0xff, 0xfe, 0xae, 0x22, 0xf7, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00,
                         0x02, 0x40, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04};
    const Bytes routing_rest = {0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00,
                                0x00, 0x00, 0x00, 0x02, 0x10, 0x00, 0x02, 0x00, 0x00, 0x00,
                                0x00, 0x00, 0x04};
    const Bytes icmpv6 = concat({start, Bytes{0x3a}, routing_rest,
                                 Bytes{0x80, 0x00, 0xd3, 0xab, 0x00, 0x00, 0x00, 0x00}});
    const PacketView icmp_view = decode_captured({LinkType::ethernet, icmpv6, 86});
    CHECK(icmp_view.status == DecodeStatus::ok);
    CHECK(icmp_view.protocol == ipproto::icmpv6);
    CHECK(icmp_view.icmp_type == 128);

    const Bytes udp = concat({start, Bytes{0x11}, routing_rest,
                              Bytes{0x16, 0x0d, 0x16, 0x0a, 0x00, 0x08, 0x27, 0xb6}});
    const PacketView udp_view = decode_captured({LinkType::ethernet, udp, 86});
    CHECK(udp_view.status == DecodeStatus::ok);
    CHECK(udp_view.protocol == ipproto::udp);
    CHECK(udp_view.sport == 5645);
    CHECK(udp_view.dport == 5642);
}

// ---- Random input ----

namespace {

constexpr LinkType fuzz_link_types[] = {
    LinkType::null_bsd,  LinkType::ethernet, LinkType::raw,  LinkType::loop,
    LinkType::linux_sll, LinkType::ipv4,     LinkType::ipv6, LinkType::linux_sll2,
};

// Valid frames that the mutations start from, so that random changes reach deep layers.
std::vector<std::pair<LinkType, Bytes>> fuzz_seeds()
{
    const Bytes chain = concat({options_header(ipproto::routing, 1),
                                options_header(ipproto::fragment, 0),
                                fragment_header(ipproto::ah, 0, true), ah_header(ipproto::udp, 4),
                                udp_datagram(1, 2, 4)});
    return {
        {LinkType::ethernet, concat({ethernet_header({0x8100, 0x0800}),
                                     ipv4_packet(ipproto::tcp, tcp_header(1, 2), Bytes(8, 1))})},
        {LinkType::ethernet, concat({ethernet_header({0x86dd}),
                                     ipv6_packet(ipproto::hopopts, chain)})},
        {LinkType::linux_sll2, concat({sll2_header(0x86dd), ipv6_packet(ipproto::sctp,
                                                                        sctp_header(1, 2))})},
        {LinkType::raw, ipv4_packet(ipproto::udplite, udplite_header(1, 2, 0))},
        {LinkType::null_bsd, concat({Bytes{30, 0, 0, 0}, ipv6_packet(ipproto::icmpv6,
                                                                     icmp_header(1, 4))})},
    };
}

} // namespace

TEST_CASE("random and mutated frames decode without fault")
{
    // A fixed seed makes every run feed the same frames. Reads past a frame's end are caught
    // by AddressSanitizer in the sanitizer build, because each frame is its own allocation.
    std::mt19937 random(20261204u);
    const auto seeds = fuzz_seeds();
    std::size_t decoded_ok = 0;
    std::size_t with_ports = 0;
    std::size_t malformed = 0;

    for (int iteration = 0; iteration < 200000; ++iteration) {
        LinkType link_type;
        Bytes frame;
        if (iteration % 2 == 0) {
            link_type = fuzz_link_types[random() % std::size(fuzz_link_types)];
            frame.resize(random() % 97);
            for (std::uint8_t& byte : frame)
                byte = static_cast<std::uint8_t>(random());
        } else {
            const auto& seed = seeds[random() % seeds.size()];
            link_type = seed.first;
            frame = seed.second;
            for (unsigned changes = 1 + random() % 4; changes > 0; --changes)
                frame[random() % frame.size()] = static_cast<std::uint8_t>(random());
            frame.resize(random() % (frame.size() + 1));
        }
        const std::uint32_t wire_length =
            static_cast<std::uint32_t>(frame.size()) + (random() % 4 == 0 ? random() % 70000 : 0);

        const LinkResult link = strip_link(static_cast<std::uint32_t>(link_type), frame);
        if (link.kind != LinkResult::Kind::ip)
            continue;
        REQUIRE(link.ip_offset <= frame.size());
        const Bytes ip(frame.begin() + link.ip_offset, frame.end());
        const PacketView view = decode_ip(ip, wire_length - link.ip_offset);

        CAPTURE(iteration);
        REQUIRE(static_cast<std::size_t>(view.status) < decode_status_count);
        if (!view.ok()) {
            ++malformed;
            continue;
        }
        ++decoded_ok;
        REQUIRE(view.ip_length <= wire_length - link.ip_offset);
        if (view.has_ports()) {
            ++with_ports;
            const bool port_protocol = view.protocol == ipproto::tcp ||
                                       view.protocol == ipproto::udp ||
                                       view.protocol == ipproto::udplite ||
                                       view.protocol == ipproto::sctp;
            REQUIRE(port_protocol);
        }
        if (view.has_icmp)
            REQUIRE((view.protocol == ipproto::icmp || view.protocol == ipproto::icmpv6));
    }

    // The mutations must reach every outcome, or the test exercises little.
    CHECK(decoded_ok > 1000);
    CHECK(with_ports > 1000);
    CHECK(malformed > 1000);
}
