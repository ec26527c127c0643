#include "decode/packet.hpp"

#include <array>
#include <string_view>

namespace portwall {

namespace {

// Indexed by DecodeStatus; each name is its enumerator's name.
constexpr std::array<std::string_view, decode_status_count> status_names = {
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

// A status added to the enum without a name here would leave an empty entry.
constexpr bool every_status_named() noexcept
{
    for (std::string_view name : status_names) {
        if (name.empty())
            return false;
    }
    return true;
}
static_assert(every_status_named(), "decode_status_name: a DecodeStatus has no name");

} // namespace

std::string_view decode_status_name(DecodeStatus status) noexcept
{
    const auto index = static_cast<std::size_t>(status);
    if (index >= status_names.size())
        return "invalid_status";
    return status_names[index];
}

} // namespace portwall
