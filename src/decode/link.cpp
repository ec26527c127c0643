#include "decode/decode.hpp"
#include "decode/layers.hpp"

namespace portwall {

namespace {

using detail::read_be16;
using detail::read_be32;

constexpr std::uint16_t ethertype_ipv4 = 0x0800;
constexpr std::uint16_t ethertype_ipv6 = 0x86dd;
constexpr std::uint16_t ethertype_vlan = 0x8100;     // 802.1Q customer tag
constexpr std::uint16_t ethertype_qinq = 0x88a8;     // 802.1ad service tag
constexpr std::uint16_t ethertype_qinq_old = 0x9100; // service tag before 802.1ad

constexpr std::size_t ethernet_header_length = 14;
constexpr std::size_t vlan_tag_length = 4;
constexpr std::size_t sll_header_length = 16;
constexpr std::size_t sll2_header_length = 20;
constexpr std::size_t loopback_header_length = 4;

// VLAN tags followed before a frame is counted as not IP. Real networks stack two or three,
// and the bound keeps the work per frame fixed.
constexpr int max_vlan_tags = 16;

// BSD address family values: AF_INET is 2 everywhere, AF_INET6 is 24 (NetBSD, OpenBSD),
// 28 (FreeBSD, DragonFly) or 30 (macOS).
constexpr std::uint32_t bsd_af_inet = 2;
constexpr std::uint32_t bsd_af_inet6_values[] = {24, 28, 30};

LinkResult ip_at(std::size_t offset) noexcept
{
    return {LinkResult::Kind::ip, static_cast<std::uint32_t>(offset)};
}

constexpr LinkResult not_ip{LinkResult::Kind::not_ip, 0};
constexpr LinkResult truncated{LinkResult::Kind::truncated, 0};

std::uint32_t read_le32(std::span<const std::uint8_t> bytes, std::size_t offset) noexcept
{
    return static_cast<std::uint32_t>(bytes[offset]) |
           static_cast<std::uint32_t>(bytes[offset + 1]) << 8 |
           static_cast<std::uint32_t>(bytes[offset + 2]) << 16 |
           static_cast<std::uint32_t>(bytes[offset + 3]) << 24;
}

bool is_vlan_tag(std::uint16_t ethertype) noexcept
{
    return ethertype == ethertype_vlan || ethertype == ethertype_qinq ||
           ethertype == ethertype_qinq_old;
}

// Follow `ethertype`, whose payload starts at `payload_offset`, through any VLAN tags.
// A tag is two bytes of priority and VLAN id, then the EtherType of what it carries.
LinkResult follow_ethertype(std::span<const std::uint8_t> frame, std::uint16_t ethertype,
                            std::size_t payload_offset) noexcept
{
    for (int tags = 0; is_vlan_tag(ethertype); ++tags) {
        if (tags == max_vlan_tags)
            return not_ip;
        if (frame.size() < payload_offset + vlan_tag_length)
            return truncated;
        ethertype = read_be16(frame, payload_offset + 2);
        payload_offset += vlan_tag_length;
    }

    // Anything else, including 802.3 frames whose type field is a length, is not IP.
    if (ethertype == ethertype_ipv4 || ethertype == ethertype_ipv6)
        return ip_at(payload_offset);
    return not_ip;
}

bool is_bsd_address_family_ip(std::uint32_t family) noexcept
{
    if (family == bsd_af_inet)
        return true;
    for (std::uint32_t inet6 : bsd_af_inet6_values) {
        if (family == inet6)
            return true;
    }
    return false;
}

LinkResult strip_loopback(std::span<const std::uint8_t> frame, bool either_byte_order) noexcept
{
    if (frame.size() < loopback_header_length)
        return truncated;

    if (is_bsd_address_family_ip(read_be32(frame, 0)))
        return ip_at(loopback_header_length);

    // LINKTYPE_NULL stores the family in the capturing host's byte order, which a capture
    // file does not record, so both orders are tried.
    if (either_byte_order && is_bsd_address_family_ip(read_le32(frame, 0)))
        return ip_at(loopback_header_length);
    return not_ip;
}

} // namespace

bool link_type_supported(std::uint32_t link_type) noexcept
{
    switch (static_cast<LinkType>(link_type)) {
    case LinkType::null_bsd:
    case LinkType::ethernet:
    case LinkType::raw:
    case LinkType::loop:
    case LinkType::linux_sll:
    case LinkType::ipv4:
    case LinkType::ipv6:
    case LinkType::linux_sll2:
        return true;
    }
    return false;
}

LinkResult strip_link(std::uint32_t link_type, std::span<const std::uint8_t> frame) noexcept
{
    switch (static_cast<LinkType>(link_type)) {
    case LinkType::ethernet:
        if (frame.size() < ethernet_header_length)
            return truncated;
        return follow_ethertype(frame, read_be16(frame, 12), ethernet_header_length);
    case LinkType::linux_sll:
        if (frame.size() < sll_header_length)
            return truncated;
        return follow_ethertype(frame, read_be16(frame, 14), sll_header_length);
    case LinkType::linux_sll2:
        if (frame.size() < sll2_header_length)
            return truncated;
        return follow_ethertype(frame, read_be16(frame, 0), sll2_header_length);
    case LinkType::null_bsd:
        return strip_loopback(frame, true);
    case LinkType::loop:
        return strip_loopback(frame, false);
    case LinkType::raw:
    case LinkType::ipv4:
    case LinkType::ipv6:
        // decode_ip reads the version nibble and reports an empty frame as truncated_ip.
        return ip_at(0);
    }
    return not_ip;
}

} // namespace portwall
