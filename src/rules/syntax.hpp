// The text forms of rule values, shared by the TOML compiler and the CLI.
//
// Each parser returns either a value or one error message that names the
// offending text; the callers add the position. Formatting functions produce
// text that the matching parser reads back to the same value.
#pragma once

#include "classify/rule.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portwall {

// A parsed value or the reason it could not be parsed.
template <typename T>
struct Parsed {
    std::optional<T> value;
    std::string error; // set when value is empty

    static Parsed success(T result) { return Parsed{std::move(result), {}}; }
    static Parsed failure(std::string message) { return Parsed{std::nullopt, std::move(message)}; }
    bool ok() const noexcept { return value.has_value(); }
};

// A port range with an optional protocol, as the CLI writes it: "22",
// "3306/tcp", "6000-6100/udp".
struct PortSpec {
    PortRange range;
    std::optional<std::uint8_t> protocol;
};

// One member of a src/dst list: a prefix, or a reference to a named set.
struct AddressTerm {
    std::optional<Prefix> prefix; // set unless this is a set reference
    std::string set_name;         // without the '@'; set when prefix is empty
};

// Parse a decimal port number 0-65535.
Parsed<std::uint16_t> parse_port(std::string_view text);

// Parse "PORT" or "LOW-HIGH" (LOW <= HIGH).
Parsed<PortRange> parse_port_range(std::string_view text);

// Parse "PORT", "LOW-HIGH", optionally followed by "/PROTOCOL", where the
// protocol must be one that carries ports.
Parsed<PortSpec> parse_port_spec(std::string_view text);

// Parse a protocol name (tcp, udp, udplite, sctp, icmp, icmpv6) or a decimal
// protocol number 0-255.
Parsed<std::uint8_t> parse_protocol(std::string_view text);

// The name parse_protocol accepts for `protocol`, or its decimal number.
std::string protocol_name(std::uint8_t protocol);

// Whether packets of `protocol` carry source and destination ports.
bool protocol_has_ports(std::uint8_t protocol) noexcept;

// Parse one IPv4 or IPv6 address in the inet_pton notation.
Parsed<Address> parse_address(std::string_view text);

// Parse "ADDRESS" (a host prefix) or "ADDRESS/LENGTH". Rejects lengths out of
// range and host bits set past the length; that message names the prefix
// with the host bits cleared.
Parsed<Prefix> parse_prefix(std::string_view text);

// Parse a prefix or a set reference "@NAME".
Parsed<AddressTerm> parse_address_term(std::string_view text);

// Check a rule or set name: 1 to 64 characters of [A-Za-z0-9_.-], not all
// digits (so that a number always means a rule position), and not "policy"
// (the name that expect files and reports give the policy verdict). Returns
// an error message, or an empty string when the name is valid.
std::string check_name(std::string_view name);

std::string format_address(const Address& address);
std::string format_prefix(const Prefix& prefix); // host prefixes without "/32", "/128"
std::string format_port_range(const PortRange& range); // "80" or "1000-2000"

// Quote `text` as a TOML basic string, escaping quotes, backslashes and
// control characters.
std::string quote_toml_string(std::string_view text);

// Format `rule` as a `[[rule]]` table that the compiler reads back to an
// equal rule. Sets appear expanded to their prefixes, and the origin is not
// written. The text ends with a newline.
std::string format_rule_toml(const Rule& rule);

} // namespace portwall
