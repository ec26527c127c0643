#include "decode/decode.hpp"
#include "decode/layers.hpp"

namespace portwall {

PacketView decode_ip(std::span<const std::uint8_t> bytes, std::uint32_t wire_length) noexcept
{
    PacketView view;

    // A capture record may claim more captured bytes than the wire length. Bytes past the
    // wire length are not part of the packet.
    if (bytes.size() > wire_length)
        bytes = bytes.first(wire_length);

    if (bytes.empty()) {
        view.status = DecodeStatus::truncated_ip;
        return view;
    }

    switch (bytes[0] >> 4) {
    case 4:
        detail::decode_ipv4(bytes, wire_length, view);
        return view;
    case 6:
        detail::decode_ipv6(bytes, wire_length, view);
        return view;
    default:
        view.status = DecodeStatus::bad_ip_version;
        return view;
    }
}

} // namespace portwall
