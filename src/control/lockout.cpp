#include "control/lockout.hpp"

#include "rules/syntax.hpp"

#include <sstream>

namespace portwall::control {

namespace {

Address unmap_ipv4(Address address)
{
    static constexpr std::uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (address.family != Family::ipv6 ||
        !std::equal(std::begin(mapped_prefix), std::end(mapped_prefix), address.bytes.begin()))
        return address;

    Address ipv4;
    ipv4.family = Family::ipv4;
    std::copy(address.bytes.begin() + 12, address.bytes.end(), ipv4.bytes.begin());
    return ipv4;
}

} // namespace

std::optional<PacketView> parse_ssh_connection(std::string_view text, std::string& error)
{
    std::istringstream fields{std::string(text)};
    std::string client, client_port, server, server_port;
    fields >> client >> client_port >> server >> server_port;
    if (!fields) {
        error = "SSH_CONNECTION \"" + std::string(text) +
                "\" does not have the four fields CLIENT PORT SERVER PORT";
        return std::nullopt;
    }

    const Parsed<Address> source = parse_address(client);
    const Parsed<Address> destination = parse_address(server);
    const Parsed<std::uint16_t> sport = parse_port(client_port);
    const Parsed<std::uint16_t> dport = parse_port(server_port);
    for (const std::string* message :
         {&source.error, &destination.error, &sport.error, &dport.error}) {
        if (!message->empty()) {
            error = "SSH_CONNECTION \"" + std::string(text) + "\": " + *message;
            return std::nullopt;
        }
    }

    PacketView packet;
    packet.status = DecodeStatus::ok;
    packet.src = unmap_ipv4(*source.value);
    packet.dst = unmap_ipv4(*destination.value);
    if (packet.src.family != packet.dst.family) {
        error = "SSH_CONNECTION \"" + std::string(text) + "\" mixes IPv4 and IPv6";
        return std::nullopt;
    }
    packet.family = packet.src.family;
    packet.protocol = ipproto::tcp;
    packet.ports = PortsAbsence::present;
    packet.sport = *sport.value;
    packet.dport = *dport.value;
    packet.ip_length = packet.family == Family::ipv4 ? 40 : 60;
    return packet;
}

Action judge_packet(const RuleTable& table, const PacketView& packet, std::size_t& deciding_rule)
{
    for (std::size_t i = 0; i < table.rules.size(); ++i) {
        if (rule_matches(table.rules[i], packet)) {
            deciding_rule = i;
            return table.rules[i].action;
        }
    }
    deciding_rule = table.rules.size();
    return table.policy;
}

} // namespace portwall::control
