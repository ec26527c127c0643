#include "rules/syntax.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdio>

namespace portwall {

namespace {

struct ProtocolName {
    std::string_view name;
    std::uint8_t number;
};

constexpr std::array<ProtocolName, 6> protocol_names{{
    {"tcp", ipproto::tcp},
    {"udp", ipproto::udp},
    {"udplite", ipproto::udplite},
    {"sctp", ipproto::sctp},
    {"icmp", ipproto::icmp},
    {"icmpv6", ipproto::icmpv6},
}};

bool all_digits(std::string_view text) noexcept
{
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Parse a decimal number of at most `max_digits` digits; empty when the text
// is not one. Callers check the range, so that their message names the value.
std::optional<unsigned long> parse_decimal(std::string_view text, std::size_t max_digits)
{
    if (!all_digits(text) || text.size() > max_digits)
        return std::nullopt;
    unsigned long value = 0;
    for (char c : text)
        value = value * 10 + static_cast<unsigned long>(c - '0');
    return value;
}

std::uint8_t max_prefix_length(Family family) noexcept
{
    return family == Family::ipv4 ? 32 : 128;
}

// Clear the bits of `address` past `length`.
Address mask_address(Address address, std::uint8_t length) noexcept
{
    for (std::size_t i = 0; i < address.bytes.size(); ++i) {
        const int bits_kept = std::clamp(static_cast<int>(length) - static_cast<int>(i) * 8, 0, 8);
        address.bytes[i] &= static_cast<std::uint8_t>(0xff00u >> bits_kept);
    }
    return address;
}

void append_list(std::string& out, std::string_view key, const std::vector<std::string>& items)
{
    if (items.empty())
        return;
    out.append(key).append(" = ");
    if (items.size() == 1) {
        out.append(items.front()).append("\n");
        return;
    }
    out.append("[");
    for (std::size_t i = 0; i < items.size(); ++i)
        out.append(i == 0 ? "" : ", ").append(items[i]);
    out.append("]\n");
}

std::vector<std::string> port_items(const std::vector<PortRange>& ranges)
{
    std::vector<std::string> items;
    for (const PortRange& range : ranges) {
        // A single port is written as a TOML integer, a range as a string.
        const std::string text = format_port_range(range);
        items.push_back(range.low == range.high ? text : quote_toml_string(text));
    }
    return items;
}

std::vector<std::string> prefix_items(const std::vector<Prefix>& prefixes)
{
    std::vector<std::string> items;
    for (const Prefix& prefix : prefixes)
        items.push_back(quote_toml_string(format_prefix(prefix)));
    return items;
}

} // namespace

Parsed<std::uint16_t> parse_port(std::string_view text)
{
    const auto value = parse_decimal(text, 10);
    if (!value) {
        return Parsed<std::uint16_t>::failure("invalid port '" + std::string(text) +
                                              "': expected a number 0-65535");
    }
    if (*value > 65535) {
        return Parsed<std::uint16_t>::failure("port " + std::string(text) +
                                              " is out of range 0-65535");
    }
    return Parsed<std::uint16_t>::success(static_cast<std::uint16_t>(*value));
}

Parsed<PortRange> parse_port_range(std::string_view text)
{
    const std::size_t dash = text.find('-');
    if (dash == std::string_view::npos) {
        const auto port = parse_port(text);
        if (!port.ok())
            return Parsed<PortRange>::failure(port.error);
        return Parsed<PortRange>::success(PortRange{*port.value, *port.value});
    }

    const auto low = parse_port(text.substr(0, dash));
    if (!low.ok())
        return Parsed<PortRange>::failure(low.error + " in range '" + std::string(text) + "'");
    const auto high = parse_port(text.substr(dash + 1));
    if (!high.ok())
        return Parsed<PortRange>::failure(high.error + " in range '" + std::string(text) + "'");
    if (*low.value > *high.value) {
        return Parsed<PortRange>::failure("port range '" + std::string(text) +
                                          "' has its low end above its high end");
    }
    return Parsed<PortRange>::success(PortRange{*low.value, *high.value});
}

Parsed<PortSpec> parse_port_spec(std::string_view text)
{
    const std::size_t slash = text.find('/');
    const auto range = parse_port_range(text.substr(0, slash));
    if (!range.ok())
        return Parsed<PortSpec>::failure(range.error);

    PortSpec spec{*range.value, std::nullopt};
    if (slash == std::string_view::npos)
        return Parsed<PortSpec>::success(spec);

    const auto protocol = parse_protocol(text.substr(slash + 1));
    if (!protocol.ok())
        return Parsed<PortSpec>::failure(protocol.error);
    if (!protocol_has_ports(*protocol.value)) {
        return Parsed<PortSpec>::failure("protocol '" + protocol_name(*protocol.value) +
                                         "' has no ports");
    }
    spec.protocol = *protocol.value;
    return Parsed<PortSpec>::success(spec);
}

Parsed<std::uint8_t> parse_protocol(std::string_view text)
{
    for (const ProtocolName& entry : protocol_names) {
        if (entry.name == text)
            return Parsed<std::uint8_t>::success(entry.number);
    }
    const auto number = parse_decimal(text, 10);
    if (!number) {
        return Parsed<std::uint8_t>::failure(
            "unknown protocol '" + std::string(text) +
            "': expected tcp, udp, udplite, sctp, icmp, icmpv6 or a number 0-255");
    }
    if (*number > 255) {
        return Parsed<std::uint8_t>::failure("protocol number " + std::string(text) +
                                             " is out of range 0-255");
    }
    return Parsed<std::uint8_t>::success(static_cast<std::uint8_t>(*number));
}

std::string protocol_name(std::uint8_t protocol)
{
    for (const ProtocolName& entry : protocol_names) {
        if (entry.number == protocol)
            return std::string(entry.name);
    }
    return std::to_string(protocol);
}

bool protocol_has_ports(std::uint8_t protocol) noexcept
{
    return port_protocols().test(protocol);
}

Parsed<Address> parse_address(std::string_view text)
{
    const std::string terminated(text); // inet_pton needs a C string
    Address address;
    if (inet_pton(AF_INET, terminated.c_str(), address.bytes.data()) == 1) {
        address.family = Family::ipv4;
        return Parsed<Address>::success(address);
    }
    if (inet_pton(AF_INET6, terminated.c_str(), address.bytes.data()) == 1) {
        address.family = Family::ipv6;
        return Parsed<Address>::success(address);
    }
    return Parsed<Address>::failure("invalid address '" + terminated +
                                    "': expected an IPv4 or IPv6 address");
}

Parsed<Prefix> parse_prefix(std::string_view text)
{
    const std::size_t slash = text.find('/');
    const auto address = parse_address(text.substr(0, slash));
    if (!address.ok())
        return Parsed<Prefix>::failure(address.error);

    Prefix prefix{*address.value, max_prefix_length(address.value->family)};
    if (slash == std::string_view::npos)
        return Parsed<Prefix>::success(prefix);

    const std::string_view length_text = text.substr(slash + 1);
    const auto length = parse_decimal(length_text, 3);
    const std::uint8_t max_length = max_prefix_length(prefix.address.family);
    const std::string range = "0-" + std::to_string(max_length);
    if (!length) {
        return Parsed<Prefix>::failure("invalid prefix length '" + std::string(length_text) +
                                       "' in '" + std::string(text) + "': expected a number " +
                                       range);
    }
    if (*length > max_length) {
        const char* family_name = prefix.address.family == Family::ipv4 ? "IPv4" : "IPv6";
        return Parsed<Prefix>::failure("prefix length '" + std::string(length_text) +
                                       "' is out of range " + range + " for " + family_name +
                                       " in '" + std::string(text) + "'");
    }
    prefix.length = static_cast<std::uint8_t>(*length);

    const Address network = mask_address(prefix.address, prefix.length);
    if (network != prefix.address) {
        const Prefix corrected{network, prefix.length};
        return Parsed<Prefix>::failure("prefix '" + std::string(text) +
                                       "' has host bits set, did you mean '" +
                                       format_address(network) + "/" +
                                       std::to_string(corrected.length) + "'?");
    }
    return Parsed<Prefix>::success(prefix);
}

Parsed<AddressTerm> parse_address_term(std::string_view text)
{
    if (!text.empty() && text.front() == '@') {
        const std::string_view name = text.substr(1);
        const std::string problem = check_name(name);
        if (!problem.empty())
            return Parsed<AddressTerm>::failure("invalid set reference '" + std::string(text) +
                                                "': set " + problem);
        return Parsed<AddressTerm>::success(AddressTerm{std::nullopt, std::string(name)});
    }
    const auto prefix = parse_prefix(text);
    if (!prefix.ok())
        return Parsed<AddressTerm>::failure(prefix.error);
    return Parsed<AddressTerm>::success(AddressTerm{*prefix.value, {}});
}

std::string check_name(std::string_view name)
{
    constexpr std::size_t max_length = 64;
    if (name.empty())
        return "name is empty";
    if (name.size() > max_length)
        return "name '" + std::string(name) + "' is longer than 64 characters";
    for (char c : name) {
        const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        if (!allowed) {
            return "name '" + std::string(name) +
                   "' contains a character other than letters, digits, '_', '.' and '-'";
        }
    }
    if (all_digits(name)) {
        return "name '" + std::string(name) +
               "' is all digits, which the command line reads as a rule position";
    }
    // Replay expect files and reports write "policy" where the policy decided,
    // so a rule of that name could not be told apart from it.
    if (name == "policy")
        return "name 'policy' is reserved for the policy verdict";
    return {};
}

std::string format_address(const Address& address)
{
    std::array<char, INET6_ADDRSTRLEN> text{};
    const int family = address.family == Family::ipv4 ? AF_INET : AF_INET6;
    inet_ntop(family, address.bytes.data(), text.data(), text.size());
    return text.data();
}

std::string format_prefix(const Prefix& prefix)
{
    std::string text = format_address(prefix.address);
    if (prefix.length != max_prefix_length(prefix.address.family))
        text.append("/").append(std::to_string(prefix.length));
    return text;
}

std::string format_port_range(const PortRange& range)
{
    if (range.low == range.high)
        return std::to_string(range.low);
    return std::to_string(range.low) + "-" + std::to_string(range.high);
}

std::string quote_toml_string(std::string_view text)
{
    std::string out = "\"";
    for (char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (byte < 0x20 || byte == 0x7f) {
            std::array<char, 8> escaped{};
            std::snprintf(escaped.data(), escaped.size(), "\\u%04x", byte);
            out += escaped.data();
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string format_rule_toml(const Rule& rule)
{
    std::string out = "[[rule]]\n";
    if (!rule.name.empty())
        out += "name = " + quote_toml_string(rule.name) + "\n";
    out += "action = " + quote_toml_string(action_name(rule.action)) + "\n";

    if (!rule.any_protocol) {
        std::vector<std::string> names;
        for (std::size_t bit = 0; bit < rule.protocols.size(); ++bit) {
            if (rule.protocols.test(bit))
                names.push_back(quote_toml_string(protocol_name(static_cast<std::uint8_t>(bit))));
        }
        append_list(out, "proto", names);
    }
    append_list(out, "sport", port_items(rule.sport));
    append_list(out, "dport", port_items(rule.dport));
    append_list(out, "src", prefix_items(rule.src));
    append_list(out, "dst", prefix_items(rule.dst));
    if (!rule.comment.empty())
        out += "comment = " + quote_toml_string(rule.comment) + "\n";
    return out;
}

} // namespace portwall
