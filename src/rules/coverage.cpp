#include "rules/coverage.hpp"

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <optional>
#include <string>

namespace portwall {

namespace {

using Uint128 = unsigned __int128;

constexpr std::uint8_t has_ipv4 = 1;
constexpr std::uint8_t has_ipv6 = 2;

// The smallest address intervals holding the prefixes of a list, per family,
// cut to the top 32 bits (IPv4) or 64 bits (IPv6). Cutting keeps every
// "outer interval contains inner interval" that holds, so a failed
// containment still proves that no coverage is possible.
struct AddressBounds {
    std::uint64_t ipv6_low = UINT64_MAX;
    std::uint64_t ipv6_high = 0;
    std::uint32_t ipv4_low = UINT32_MAX;
    std::uint32_t ipv4_high = 0;
};

// A small fixed-size digest of one rule, compared for every pair of rules
// (72 bytes, so that scanning the earlier rules stays in cache). A rule can
// cover another only if its digest contains the other's on every dimension,
// which rejects most pairs without touching the lists.
struct RuleBounds {
    std::uint64_t protocols = 0; // protocol p sets bit p % 64
    AddressBounds src;
    AddressBounds dst;
    PortRange sport; // hull of the merged ranges, when names_ports
    PortRange dport;
    std::uint8_t src_families = 0; // has_ipv4 | has_ipv6; 0 for "any address"
    std::uint8_t dst_families = 0;
    bool names_ports = false;
};

// One rule reduced to what the coverage test compares, with port ranges
// sorted and merged and prefixes sorted, so that rules that match the same
// packets have equal summaries.
struct RuleSummary {
    std::bitset<256> protocols; // all 256 set for "any protocol"
    bool names_ports = false;
    std::vector<PortRange> sport; // empty when the rule names no ports
    std::vector<PortRange> dport;
    std::vector<Prefix> src; // empty means any
    std::vector<Prefix> dst;
};

Uint128 address_value(const Address& address) noexcept
{
    Uint128 value = 0;
    for (std::uint8_t byte : address.bytes)
        value = (value << 8) | byte;
    return value;
}

// The last address of `prefix`, as a number in the same scale as address_value.
Uint128 prefix_end(const Prefix& prefix) noexcept
{
    const unsigned total_bits = prefix.address.family == Family::ipv4 ? 32 : 128;
    const unsigned host_bits = total_bits - prefix.length;
    // IPv4 addresses sit in the top 32 bits of the 128-bit value.
    const unsigned shift = 128 - total_bits;
    const Uint128 host_mask = host_bits == 128 ? ~Uint128{0} : ((Uint128{1} << host_bits) - 1);
    return address_value(prefix.address) | (host_mask << shift);
}

// Fill `bounds` from a prefix list; returns its families (0 for an empty list).
std::uint8_t make_address_bounds(const std::vector<Prefix>& prefixes,
                                 AddressBounds& bounds) noexcept
{
    std::uint8_t families = 0;
    for (const Prefix& prefix : prefixes) {
        const Uint128 low = address_value(prefix.address);
        const Uint128 high = prefix_end(prefix);
        if (prefix.address.family == Family::ipv4) {
            families |= has_ipv4;
            bounds.ipv4_low = std::min(bounds.ipv4_low, static_cast<std::uint32_t>(low >> 96));
            bounds.ipv4_high = std::max(bounds.ipv4_high, static_cast<std::uint32_t>(high >> 96));
        } else {
            families |= has_ipv6;
            bounds.ipv6_low = std::min(bounds.ipv6_low, static_cast<std::uint64_t>(low >> 64));
            bounds.ipv6_high = std::max(bounds.ipv6_high, static_cast<std::uint64_t>(high >> 64));
        }
    }
    return families;
}

std::vector<PortRange> merge_ranges(std::vector<PortRange> ranges)
{
    std::sort(ranges.begin(), ranges.end(),
              [](const PortRange& a, const PortRange& b) { return a.low < b.low; });
    std::vector<PortRange> merged;
    for (const PortRange& range : ranges) {
        // Ranges that overlap or touch (80-89 and 90-99) become one.
        if (!merged.empty() && range.low <= static_cast<unsigned>(merged.back().high) + 1)
            merged.back().high = std::max(merged.back().high, range.high);
        else
            merged.push_back(range);
    }
    return merged;
}

std::vector<Prefix> sorted_prefixes(std::vector<Prefix> prefixes)
{
    const auto less = [](const Prefix& a, const Prefix& b) {
        if (a.address.family != b.address.family)
            return a.address.family < b.address.family;
        if (a.address.bytes != b.address.bytes)
            return a.address.bytes < b.address.bytes;
        return a.length < b.length;
    };
    std::sort(prefixes.begin(), prefixes.end(), less);
    prefixes.erase(std::unique(prefixes.begin(), prefixes.end()), prefixes.end());
    return prefixes;
}

RuleSummary summarize(const Rule& rule)
{
    RuleSummary summary;
    summary.protocols = rule.any_protocol ? std::bitset<256>{}.set() : rule.protocols;
    summary.names_ports = rule.names_ports();
    // Among packets with ports, an absent sport or dport is the full range, so
    // that "dport = 22" and "dport = 22, sport = \"0-65535\"" compare equal.
    const std::vector<PortRange> any_port{PortRange{0, 65535}};
    if (summary.names_ports) {
        summary.sport = merge_ranges(rule.sport.empty() ? any_port : rule.sport);
        summary.dport = merge_ranges(rule.dport.empty() ? any_port : rule.dport);
    }
    summary.src = sorted_prefixes(rule.src);
    summary.dst = sorted_prefixes(rule.dst);
    return summary;
}

RuleBounds make_bounds(const RuleSummary& summary)
{
    RuleBounds bounds;
    for (std::size_t protocol = 0; protocol < summary.protocols.size(); ++protocol) {
        if (summary.protocols.test(protocol))
            bounds.protocols |= std::uint64_t{1} << (protocol % 64);
    }
    bounds.names_ports = summary.names_ports;
    if (summary.names_ports) {
        bounds.sport = {summary.sport.front().low, summary.sport.back().high};
        bounds.dport = {summary.dport.front().low, summary.dport.back().high};
    }
    bounds.src_families = make_address_bounds(summary.src, bounds.src);
    bounds.dst_families = make_address_bounds(summary.dst, bounds.dst);
    return bounds;
}

bool addresses_may_cover(std::uint8_t outer_families, const AddressBounds& outer,
                         std::uint8_t inner_families, const AddressBounds& inner) noexcept
{
    if (outer_families == 0)
        return true;
    if (inner_families == 0 || (inner_families & ~outer_families) != 0)
        return false;
    if ((inner_families & has_ipv4) != 0 &&
        !(outer.ipv4_low <= inner.ipv4_low && inner.ipv4_high <= outer.ipv4_high))
        return false;
    return (inner_families & has_ipv6) == 0 ||
           (outer.ipv6_low <= inner.ipv6_low && inner.ipv6_high <= outer.ipv6_high);
}

bool range_contains(const PortRange& outer, const PortRange& inner) noexcept
{
    return outer.low <= inner.low && inner.high <= outer.high;
}

// A necessary condition for covers(): false means `outer` cannot cover `inner`.
bool bounds_may_cover(const RuleBounds& outer, const RuleBounds& inner) noexcept
{
    // A rule that names ports never matches a packet without readable ports,
    // which a rule without ports does match.
    if (outer.names_ports && !inner.names_ports)
        return false;
    if ((inner.protocols & ~outer.protocols) != 0)
        return false;
    if (outer.names_ports &&
        !(range_contains(outer.dport, inner.dport) && range_contains(outer.sport, inner.sport)))
        return false;
    return addresses_may_cover(outer.src_families, outer.src, inner.src_families, inner.src) &&
           addresses_may_cover(outer.dst_families, outer.dst, inner.dst_families, inner.dst);
}

bool ports_cover(const std::vector<PortRange>& outer, const std::vector<PortRange>& inner)
{
    if (outer.empty())
        return true;
    return std::all_of(inner.begin(), inner.end(), [&](const PortRange& range) {
        return std::any_of(outer.begin(), outer.end(), [&](const PortRange& candidate) {
            return range_contains(candidate, range);
        });
    });
}

bool prefixes_cover(const std::vector<Prefix>& outer, const std::vector<Prefix>& inner)
{
    if (outer.empty())
        return true;
    if (inner.empty())
        return false;
    return std::all_of(inner.begin(), inner.end(), [&](const Prefix& prefix) {
        return std::any_of(outer.begin(), outer.end(), [&](const Prefix& candidate) {
            return candidate.length <= prefix.length && candidate.contains(prefix.address);
        });
    });
}

// Whether every packet that `inner` matches is matched by `outer`, once
// bounds_may_cover() has passed.
bool covers(const RuleSummary& outer, const RuleSummary& inner)
{
    if ((inner.protocols & ~outer.protocols).any())
        return false;
    if (!outer.names_ports)
        return prefixes_cover(outer.src, inner.src) && prefixes_cover(outer.dst, inner.dst);
    return ports_cover(outer.dport, inner.dport) && ports_cover(outer.sport, inner.sport) &&
           prefixes_cover(outer.src, inner.src) && prefixes_cover(outer.dst, inner.dst);
}

bool same_match(const RuleSummary& a, const RuleSummary& b)
{
    return a.protocols == b.protocols && a.names_ports == b.names_ports && a.sport == b.sport &&
           a.dport == b.dport && a.src == b.src && a.dst == b.dst;
}

SourcePosition origin_position(const Rule& rule)
{
    return SourcePosition{rule.origin.file, rule.origin.line, rule.origin.column};
}

std::string quoted_rule(const RuleTable& table, std::size_t index)
{
    const std::string name = rule_display_name(table, index);
    return table.rules[index].name.empty() ? "rule " + name : "rule '" + name + "'";
}

Diagnostic covered_warning(const RuleTable& table, std::size_t covered, std::size_t covering,
                           bool duplicate)
{
    const Rule& inner = table.rules[covered];
    const Rule& outer = table.rules[covering];
    const bool same_action = inner.action == outer.action;
    const std::string action_text =
        same_action ? "the same action (" + std::string(action_name(outer.action)) + ")"
                    : "the opposite action (" + std::string(action_name(outer.action)) +
                          " instead of " + std::string(action_name(inner.action)) + ")";

    Diagnostic warning;
    warning.severity = Diagnostic::Severity::warning;
    warning.position = origin_position(inner);
    if (duplicate) {
        warning.message = quoted_rule(table, covered) + " can never match because it duplicates " +
                          quoted_rule(table, covering) + ", which has " + action_text;
    } else {
        warning.message = quoted_rule(table, covered) + " can never match because " +
                          quoted_rule(table, covering) +
                          " matches every packet it matches, with " + action_text;
    }

    Diagnostic note;
    note.severity = Diagnostic::Severity::note;
    note.position = origin_position(outer);
    note.message = quoted_rule(table, covering) + " is defined here";
    warning.notes.push_back(std::move(note));
    return warning;
}

// The first admin port that `rule` can match as a TCP destination port, if
// any. A rule without dport counts only when `any_port` is set.
std::optional<std::uint16_t> admin_port_matched(const Rule& rule,
                                                const std::vector<std::uint16_t>& admin_ports,
                                                bool any_port)
{
    if (!rule.any_protocol && !rule.protocols.test(ipproto::tcp))
        return std::nullopt;
    for (const std::uint16_t port : admin_ports) {
        if (rule.dport.empty() && any_port)
            return port;
        for (const PortRange& range : rule.dport) {
            if (range.low <= port && port <= range.high)
                return port;
        }
    }
    return std::nullopt;
}

// "src", "src and dst", ...: the conditions the kernel skips on an admin port.
std::string bypassed_conditions(const Rule& rule)
{
    std::vector<std::string> keys;
    if (!rule.src.empty())
        keys.push_back("src");
    if (!rule.dst.empty())
        keys.push_back("dst");
    if (!rule.sport.empty())
        keys.push_back("sport");
    std::string text;
    for (std::size_t i = 0; i < keys.size(); ++i)
        text += (i == 0 ? "" : i + 1 == keys.size() ? " and " : ", ") + keys[i];
    return text;
}

} // namespace

std::vector<Diagnostic> find_admin_port_bypasses(const RuleFile& file)
{
    std::vector<Diagnostic> warnings;
    if (file.fail == FailMode::open || file.admin_ports.empty())
        return warnings;
    const RuleTable& table = file.table;
    for (std::size_t index = 0; index < table.rules.size(); ++index) {
        const Rule& rule = table.rules[index];
        const bool drops = rule.action == Action::drop;
        const std::string conditions = bypassed_conditions(rule);
        if (!drops && conditions.empty())
            continue; // an unconditional accept agrees with the kernel
        // A drop without dport still drops the admin port; an accept without
        // dport limited by src promises nothing about that port in particular.
        const auto port = admin_port_matched(rule, file.admin_ports, drops);
        if (!port)
            continue;
        const std::string what = drops ? "drops TCP port " + std::to_string(*port)
                                       : "limits TCP port " + std::to_string(*port) + " by " +
                                             conditions;
        Diagnostic warning;
        warning.severity = Diagnostic::Severity::warning;
        warning.position = origin_position(rule);
        warning.message = quoted_rule(table, index) + " " + what + ", but " +
                          std::to_string(*port) +
                          " is in [daemon] admin_ports, which the kernel accepts from every "
                          "address before any rule when failing closed";
        warnings.push_back(std::move(warning));
    }
    return warnings;
}

std::vector<Diagnostic> find_covered_rules(const RuleTable& table)
{
    std::vector<RuleSummary> summaries;
    std::vector<RuleBounds> bounds;
    summaries.reserve(table.rules.size());
    bounds.reserve(table.rules.size());
    for (const Rule& rule : table.rules) {
        summaries.push_back(summarize(rule));
        bounds.push_back(make_bounds(summaries.back()));
    }

    // Every pair is compared, which is quadratic in the number of rules; the
    // fixed-size bounds reject most pairs in a few comparisons.
    std::vector<Diagnostic> warnings;
    for (std::size_t later = 1; later < summaries.size(); ++later) {
        for (std::size_t earlier = 0; earlier < later; ++earlier) {
            if (!bounds_may_cover(bounds[earlier], bounds[later]) ||
                !covers(summaries[earlier], summaries[later]))
                continue;
            const bool duplicate = same_match(summaries[earlier], summaries[later]);
            warnings.push_back(covered_warning(table, later, earlier, duplicate));
            break;
        }
    }
    return warnings;
}

} // namespace portwall
