#include "replay/report.hpp"

#include <arpa/inet.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <sstream>

namespace portwall::replay {

namespace {

std::string format_address(const Address& address)
{
    char text[INET6_ADDRSTRLEN] = {};
    const int family = address.family == Family::ipv4 ? AF_INET : AF_INET6;
    if (inet_ntop(family, address.bytes.data(), text, sizeof text) == nullptr)
        return "?";
    return text;
}

std::string format_endpoint(const Address& address, bool with_port, std::uint16_t port)
{
    if (!with_port)
        return format_address(address);
    // Appending piece by piece also avoids a false -Wrestrict warning of GCC 12
    // on `"[" + std::string`.
    std::string text;
    if (address.family == Family::ipv6)
        text.append("[").append(format_address(address)).append("]");
    else
        text.append(format_address(address));
    return text.append(":").append(std::to_string(port));
}

std::string protocol_name(std::uint8_t protocol)
{
    struct Name {
        std::uint8_t number;
        std::string_view name;
    };
    static constexpr std::array<Name, 8> names{{
        {ipproto::icmp, "icmp"},
        {ipproto::tcp, "tcp"},
        {ipproto::udp, "udp"},
        {ipproto::esp, "esp"},
        {ipproto::ah, "ah"},
        {ipproto::icmpv6, "icmpv6"},
        {ipproto::sctp, "sctp"},
        {ipproto::udplite, "udplite"},
    }};
    for (const Name& entry : names) {
        if (entry.number == protocol)
            return std::string(entry.name);
    }
    return "proto-" + std::to_string(protocol);
}

std::string_view ports_absence_name(PortsAbsence absence)
{
    switch (absence) {
    case PortsAbsence::present:
        return "present";
    case PortsAbsence::no_ports_in_protocol:
        return "no_ports_in_protocol";
    case PortsAbsence::later_fragment:
        return "later_fragment";
    case PortsAbsence::not_captured:
        return "not_captured";
    }
    return "unknown";
}

// Whether a malformed packet's family, protocol and addresses were read: the
// statuses from truncated_extension on are found after the IP header.
// NOTE: this relies on the decoder filling those fields before it checks
// extension and transport headers, and on new statuses being appended.
bool header_fields_known(DecodeStatus status)
{
    return status == DecodeStatus::ok || status >= DecodeStatus::truncated_extension;
}

// Whether the upper-layer protocol was found: an IPv6 extension header that
// is cut short, missing or one too many hides it.
bool protocol_known(DecodeStatus status)
{
    return status != DecodeStatus::truncated_extension &&
           status != DecodeStatus::extension_chain_too_long &&
           status != DecodeStatus::extension_not_captured;
}

std::string describe_ip(const PacketView& packet)
{
    std::string text = packet.family == Family::ipv4 ? "ipv4 " : "ipv6 ";
    text += protocol_known(packet.status) ? protocol_name(packet.protocol) : "?";
    text += " ";
    text += format_endpoint(packet.src, packet.has_ports(), packet.sport);
    text += " -> ";
    text += format_endpoint(packet.dst, packet.has_ports(), packet.dport);
    return text;
}

std::size_t name_width(const std::vector<std::string>& names)
{
    std::size_t width = 0;
    for (const std::string& name : names)
        width = std::max(width, name.size());
    return width;
}

std::string pad(std::string text, std::size_t width)
{
    if (text.size() < width)
        text.append(width - text.size(), ' ');
    return text;
}

void write_counts(std::ostringstream& out, const Totals& totals)
{
    out << "  accepted   " << totals.accepted << '\n';
    out << "  dropped    " << totals.dropped << '\n';
    out << "  not IP     " << totals.not_ip << '\n';
    out << "  malformed  " << totals.malformed_total() << " (policy verdict)\n";
    for (std::size_t i = 0; i < decode_status_count; ++i) {
        if (totals.malformed[i] != 0) {
            out << "    " << decode_status_name(static_cast<DecodeStatus>(i)) << "  "
                << totals.malformed[i] << '\n';
        }
    }
}

void write_rule_hits(std::ostringstream& out, const Ruleset& ruleset)
{
    const RuleTable& table = ruleset.table();
    std::vector<std::string> names;
    for (std::size_t i = 0; i < table.rules.size(); ++i)
        names.push_back(rule_display_name(table, i));
    names.push_back("policy");
    const std::size_t width = name_width(names);

    out << "rule hits, in file order:\n";
    for (std::size_t i = 0; i < table.rules.size(); ++i) {
        const std::string action(action_name(table.rules[i].action));
        out << "  " << pad(names[i], width) << "  " << pad(action, 6) << "  "
            << ruleset.rule_counter(i).packets.load(std::memory_order_relaxed) << '\n';
    }
    out << "  " << pad("policy", width) << "  " << pad(std::string(action_name(table.policy)), 6)
        << "  " << ruleset.policy_counter().packets.load(std::memory_order_relaxed) << '\n';
}

void write_captures(std::ostringstream& out, const std::vector<CaptureReport>& captures)
{
    out << "captures:\n";
    for (const CaptureReport& capture : captures) {
        out << "  " << capture.path << ": " << capture.packets << " packets";
        if (!capture.link_type.empty())
            out << ", link type " << capture.link_type;
        if (!capture.ok())
            out << ", failed: " << capture.error;
        out << '\n';
    }
}

nlohmann::ordered_json json_rules(const Ruleset& ruleset)
{
    nlohmann::ordered_json rules = nlohmann::ordered_json::array();
    const RuleTable& table = ruleset.table();
    for (std::size_t i = 0; i < table.rules.size(); ++i) {
        const std::uint64_t hits = ruleset.rule_counter(i).packets.load(std::memory_order_relaxed);
        rules.push_back({{"name", rule_display_name(table, i)}, {"hits", hits}});
    }
    return rules;
}

nlohmann::ordered_json json_malformed(const Totals& totals)
{
    nlohmann::ordered_json malformed = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < decode_status_count; ++i) {
        const auto status = static_cast<DecodeStatus>(i);
        if (status != DecodeStatus::ok)
            malformed[std::string(decode_status_name(status))] = totals.malformed[i];
    }
    return malformed;
}

nlohmann::ordered_json json_captures(const std::vector<CaptureReport>& captures)
{
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const CaptureReport& capture : captures) {
        nlohmann::ordered_json entry = {{"path", capture.path},
                                        {"link_type", capture.link_type},
                                        {"packets", capture.packets}};
        entry["error"] = nullptr;
        if (!capture.ok())
            entry["error"] = capture.error;
        entry["failed_index"] = capture.failed_index;
        list.push_back(std::move(entry));
    }
    return list;
}

nlohmann::ordered_json json_differences(const std::vector<ExpectDifference>& differences)
{
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const ExpectDifference& difference : differences) {
        list.push_back({{"capture", difference.capture},
                        {"index", difference.index},
                        {"expected", difference.expected},
                        {"actual", difference.actual},
                        {"line", difference.line}});
    }
    return list;
}

} // namespace

std::string format_packet_line(std::string_view capture, const PacketOutcome& outcome,
                               const RuleTable& table)
{
    std::string line = std::string(capture) + ":" + std::to_string(outcome.index) + " ";
    if (!outcome.is_ip)
        return line + "not_ip";

    const PacketView& packet = outcome.packet;
    if (header_fields_known(packet.status))
        line += describe_ip(packet) + " ";
    if (!packet.ok())
        line += "malformed=" + std::string(decode_status_name(packet.status)) + " ";

    line += std::string(action_name(outcome.match.action)) + " ";
    line += outcome.match.is_policy() ? "policy"
                                      : "rule=" + rule_display_name(table, outcome.match.rule);
    if (packet.ok() && !packet.has_ports())
        line += " ports=" + std::string(ports_absence_name(packet.ports));
    if (packet.ok() && packet.fragment)
        line += " fragment";
    return line;
}

std::string format_difference(const ExpectDifference& difference, const std::string& expect_path)
{
    return difference.capture + ":" + std::to_string(difference.index) + ": expected " +
           difference.expected + ", actual " + difference.actual + " (" + expect_path + ":" +
           std::to_string(difference.line) + ")";
}

std::string format_text_summary(const RunResult& result, const Ruleset& ruleset)
{
    std::ostringstream out;
    out << "packets read " << result.totals.packets << " from " << result.captures.size()
        << (result.captures.size() == 1 ? " capture\n" : " captures\n");
    write_counts(out, result.totals);
    write_rule_hits(out, ruleset);
    write_captures(out, result.captures);
    if (result.expectations_checked)
        out << "expectation differences: " << result.differences.size() << '\n';
    return out.str();
}

std::string format_json_summary(const RunResult& result, const Ruleset& ruleset)
{
    const Totals& totals = result.totals;
    nlohmann::ordered_json summary = {
        {"packets", totals.packets},
        {"accepted", totals.accepted},
        {"dropped", totals.dropped},
        {"not_ip", totals.not_ip},
        {"policy_hits", ruleset.policy_counter().packets.load(std::memory_order_relaxed)},
        {"rules", json_rules(ruleset)},
        {"policy", std::string(action_name(ruleset.table().policy))},
        {"malformed_total", totals.malformed_total()},
        {"malformed", json_malformed(totals)},
        {"captures", json_captures(result.captures)},
    };
    if (result.expectations_checked)
        summary["expect_differences"] = json_differences(result.differences);
    // Paths need not be UTF-8, so invalid bytes are replaced instead of throwing.
    return summary.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

} // namespace portwall::replay
