// PLACEHOLDER: replaced by the real decoder.
#include "decode/decode.hpp"
namespace portwall {
std::string_view decode_status_name(DecodeStatus) noexcept { return "unknown"; }
PacketView decode_ip(std::span<const std::uint8_t>, std::uint32_t) noexcept { return {}; }
bool link_type_supported(std::uint32_t) noexcept { return false; }
LinkResult strip_link(std::uint32_t, std::span<const std::uint8_t>) noexcept { return {}; }
}
