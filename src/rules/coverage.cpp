#include "rules/coverage.hpp"

#include <algorithm>
#include <bitset>

namespace portwall {

namespace {

using Uint128 = unsigned __int128;

// The smallest address interval holding every prefix of a list. An empty list
// ("any") or one that mixes families gets `exact = false`, and then the hull
// proves nothing and is skipped.
struct AddressHull {
    bool exact = false;
    Family family = Family::ipv4;
    Uint128 low = 0;
    Uint128 high = 0;
};

// One rule reduced to what the coverage test compares, with port ranges
// sorted and merged and prefixes sorted, so that equal rules have equal
// summaries and the hulls give a cheap first test.
struct RuleSummary {
    std::bitset<256> protocols; // all 256 set for "any protocol"
    bool names_ports = false;
    std::vector<PortRange> sport; // empty when the rule names no ports
    std::vector<PortRange> dport;
    std::vector<Prefix> src; // empty means any
    std::vector<Prefix> dst;
    AddressHull src_hull;
    AddressHull dst_hull;
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

AddressHull make_hull(const std::vector<Prefix>& prefixes) noexcept
{
    AddressHull hull;
    if (prefixes.empty())
        return hull;
    hull.family = prefixes.front().address.family;
    hull.low = ~Uint128{0};
    for (const Prefix& prefix : prefixes) {
        if (prefix.address.family != hull.family)
            return AddressHull{};
        hull.low = std::min(hull.low, address_value(prefix.address));
        hull.high = std::max(hull.high, prefix_end(prefix));
    }
    hull.exact = true;
    return hull;
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
    summary.src_hull = make_hull(summary.src);
    summary.dst_hull = make_hull(summary.dst);
    return summary;
}

// Cheap necessary condition: can the outer hull contain the inner one?
bool hull_may_cover(const AddressHull& outer, const AddressHull& inner) noexcept
{
    if (!outer.exact || !inner.exact)
        return true;
    return outer.family == inner.family && outer.low <= inner.low && inner.high <= outer.high;
}

bool ports_cover(const std::vector<PortRange>& outer, const std::vector<PortRange>& inner)
{
    if (outer.empty())
        return true;
    if (inner.empty())
        return false;
    if (inner.front().low < outer.front().low || inner.back().high > outer.back().high)
        return false;
    return std::all_of(inner.begin(), inner.end(), [&](const PortRange& range) {
        return std::any_of(outer.begin(), outer.end(), [&](const PortRange& candidate) {
            return candidate.low <= range.low && range.high <= candidate.high;
        });
    });
}

bool prefix_contains(const Prefix& outer, const Prefix& inner) noexcept
{
    return outer.length <= inner.length && outer.contains(inner.address);
}

bool prefixes_cover(const std::vector<Prefix>& outer, const AddressHull& outer_hull,
                    const std::vector<Prefix>& inner, const AddressHull& inner_hull)
{
    if (outer.empty())
        return true;
    if (inner.empty() || !hull_may_cover(outer_hull, inner_hull))
        return false;
    return std::all_of(inner.begin(), inner.end(), [&](const Prefix& prefix) {
        return std::any_of(outer.begin(), outer.end(),
                           [&](const Prefix& candidate) { return prefix_contains(candidate, prefix); });
    });
}

// Whether every packet that `inner` matches is matched by `outer`.
bool covers(const RuleSummary& outer, const RuleSummary& inner)
{
    // A rule that names ports never matches a packet without readable ports,
    // which a rule without ports does match.
    if (outer.names_ports && !inner.names_ports)
        return false;
    if ((inner.protocols & ~outer.protocols).any())
        return false;
    return ports_cover(outer.dport, inner.dport) && ports_cover(outer.sport, inner.sport) &&
           prefixes_cover(outer.src, outer.src_hull, inner.src, inner.src_hull) &&
           prefixes_cover(outer.dst, outer.dst_hull, inner.dst, inner.dst_hull);
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

} // namespace

std::vector<Diagnostic> find_covered_rules(const RuleTable& table)
{
    std::vector<RuleSummary> summaries;
    summaries.reserve(table.rules.size());
    for (const Rule& rule : table.rules)
        summaries.push_back(summarize(rule));

    // Every pair is compared, which is quadratic: the early exits in covers()
    // (ports, protocols, address hulls) keep 10,000 rules well under a second.
    std::vector<Diagnostic> warnings;
    for (std::size_t later = 1; later < summaries.size(); ++later) {
        for (std::size_t earlier = 0; earlier < later; ++earlier) {
            if (!covers(summaries[earlier], summaries[later]))
                continue;
            const bool duplicate = same_match(summaries[earlier], summaries[later]);
            warnings.push_back(covered_warning(table, later, earlier, duplicate));
            break;
        }
    }
    return warnings;
}

} // namespace portwall
