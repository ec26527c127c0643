// The rule table in the form classification uses: no text, no TOML, no I/O.
//
// The rules compiler builds a RuleTable from a file; the control layer adds
// rules from the command line; classifiers are built from a RuleTable.
#pragma once

#include "decode/packet.hpp"

#include <bitset>
#include <cstdint>
#include <string>
#include <vector>

namespace portwall {

enum class Action : std::uint8_t { accept, drop };

std::string_view action_name(Action action) noexcept;

struct PortRange {
    std::uint16_t low = 0;
    std::uint16_t high = 65535;

    bool contains(std::uint16_t port) const noexcept { return low <= port && port <= high; }
    friend bool operator==(const PortRange&, const PortRange&) = default;
};

// An address prefix. Bits of `address` past `length` are zero (the compiler
// rejects host bits), so two equal prefixes compare equal.
struct Prefix {
    Address address;
    std::uint8_t length = 0; // 0..32 for IPv4, 0..128 for IPv6

    bool contains(const Address& candidate) const noexcept;
    friend bool operator==(const Prefix&, const Prefix&) = default;
};

// Where a rule came from, for listings, diagnostics and logs.
struct RuleOrigin {
    enum class Kind : std::uint8_t { file, cli } kind = Kind::file;
    std::string file;    // rule file path, when kind == file
    std::uint32_t line = 0;
    std::uint32_t column = 0;
    std::int64_t created_unix = 0; // seconds since the epoch, when kind == cli
};

// One rule. An empty list means "any". A rule matches a packet when every
// condition holds; within a list any member may match.
struct Rule {
    std::string name; // may be empty; then shown as "#<position>"
    Action action = Action::drop;

    bool any_protocol = true;
    std::bitset<256> protocols; // used when any_protocol is false

    std::vector<PortRange> sport;
    std::vector<PortRange> dport;
    std::vector<Prefix> src;
    std::vector<Prefix> dst;

    std::string comment;
    RuleOrigin origin;

    bool names_ports() const noexcept { return !sport.empty() || !dport.empty(); }
};

struct RuleTable {
    Action policy = Action::accept; // verdict for packets no rule matches
    std::vector<Rule> rules;        // tried in order; the first match decides
};

// The port-carrying protocols that a rule with ports and no `proto` means.
std::bitset<256> port_protocols() noexcept;

// The reference semantics of one rule against one packet. Every classifier
// must agree with it. Malformed packets match no rule (they get the policy).
bool rule_matches(const Rule& rule, const PacketView& packet) noexcept;

// Display name of rule number `index` (0-based): its name or "#<index+1>".
std::string rule_display_name(const RuleTable& table, std::size_t index);

} // namespace portwall
