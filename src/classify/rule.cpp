#include "classify/rule.hpp"

#include <algorithm>
#include <string>

namespace portwall {

std::string_view action_name(Action action) noexcept
{
    return action == Action::accept ? "accept" : "drop";
}

bool Prefix::contains(const Address& candidate) const noexcept
{
    if (candidate.family != address.family)
        return false;

    const std::size_t whole_bytes = length / 8;
    if (!std::equal(address.bytes.begin(), address.bytes.begin() + whole_bytes, candidate.bytes.begin()))
        return false;

    const unsigned rest_bits = length % 8;
    if (rest_bits == 0)
        return true;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest_bits));
    return (candidate.bytes[whole_bytes] & mask) == address.bytes[whole_bytes];
}

std::bitset<256> port_protocols() noexcept
{
    std::bitset<256> protocols;
    protocols.set(ipproto::tcp);
    protocols.set(ipproto::udp);
    protocols.set(ipproto::udplite);
    protocols.set(ipproto::sctp);
    return protocols;
}

namespace {

bool any_port_contains(const std::vector<PortRange>& ranges, std::uint16_t port) noexcept
{
    return ranges.empty() ||
           std::any_of(ranges.begin(), ranges.end(), [port](const PortRange& r) { return r.contains(port); });
}

bool any_prefix_contains(const std::vector<Prefix>& prefixes, const Address& address) noexcept
{
    return prefixes.empty() ||
           std::any_of(prefixes.begin(), prefixes.end(), [&](const Prefix& p) { return p.contains(address); });
}

} // namespace

bool rule_matches(const Rule& rule, const PacketView& packet) noexcept
{
    if (!packet.ok())
        return false;
    if (!rule.any_protocol && !rule.protocols.test(packet.protocol))
        return false;
    if (rule.names_ports()) {
        // A packet whose ports cannot be read never matches a rule that names
        // ports, whatever the rule's action: an unknown port is not a match.
        if (!packet.has_ports())
            return false;
        if (!any_port_contains(rule.sport, packet.sport) || !any_port_contains(rule.dport, packet.dport))
            return false;
    }
    return any_prefix_contains(rule.src, packet.src) && any_prefix_contains(rule.dst, packet.dst);
}

std::string rule_display_name(const RuleTable& table, std::size_t index)
{
    if (index < table.rules.size() && !table.rules[index].name.empty())
        return table.rules[index].name;
    return "#" + std::to_string(index + 1);
}

} // namespace portwall
