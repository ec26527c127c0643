#include "classbench.hpp"

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace portwall::bench {

namespace {

[[noreturn]] void fail_line(const std::string& path, std::size_t line_number, const std::string& line,
                            const std::string& reason)
{
    throw std::runtime_error(path + ":" + std::to_string(line_number) + ": " + reason + ": '" + line +
                             "'");
}

bool is_blank(const std::string& line)
{
    return line.find_first_not_of(" \t\r") == std::string::npos;
}

std::ifstream open_or_throw(const std::string& path)
{
    std::ifstream in(path);
    if (!in)
        throw std::runtime_error(path + ": failed to open file");
    return in;
}

// The prefix a ClassBench address field means, host bits cleared. Returns
// false when a byte or the length is out of range.
bool make_prefix(const unsigned (&bytes)[4], unsigned length, Prefix& prefix)
{
    if (length > 32)
        return false;
    prefix.address.family = Family::ipv4;
    for (int i = 0; i < 4; ++i) {
        if (bytes[i] > 255)
            return false;
        prefix.address.bytes[i] = static_cast<std::uint8_t>(bytes[i]);
    }
    for (unsigned bit = length; bit < 32; ++bit)
        prefix.address.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    prefix.length = static_cast<std::uint8_t>(length);
    return true;
}

// A ClassBench port range; 0 : 65535 is "any" and adds nothing.
bool add_ports(unsigned low, unsigned high, std::vector<PortRange>& ranges)
{
    if (low > high || high > 65535)
        return false;
    if (low != 0 || high != 65535)
        ranges.push_back({static_cast<std::uint16_t>(low), static_cast<std::uint16_t>(high)});
    return true;
}

} // namespace

bool is_classbench_rules(const std::string& path)
{
    std::ifstream in = open_or_throw(path);
    std::string line;
    while (std::getline(in, line)) {
        if (is_blank(line))
            continue;
        return line[line.find_first_not_of(" \t")] == '@';
    }
    return false;
}

RuleTable read_classbench_rules(const std::string& path)
{
    std::ifstream in = open_or_throw(path);
    RuleTable table;
    table.policy = Action::drop;
    std::string line;
    std::size_t line_number = 0;
    while (std::getline(in, line)) {
        ++line_number;
        if (is_blank(line))
            continue;
        unsigned src[4], dst[4], src_length, dst_length;
        unsigned sport_low, sport_high, dport_low, dport_high, protocol, protocol_mask;
        const int fields = std::sscanf(line.c_str(), " @%u.%u.%u.%u/%u %u.%u.%u.%u/%u %u : %u %u : %u %x/%x",
                                       &src[0], &src[1], &src[2], &src[3], &src_length, &dst[0], &dst[1],
                                       &dst[2], &dst[3], &dst_length, &sport_low, &sport_high, &dport_low,
                                       &dport_high, &protocol, &protocol_mask);
        if (fields != 16)
            fail_line(path, line_number, line, "invalid ClassBench rule");

        Rule rule;
        rule.action = Action::accept;
        rule.origin.file = path;
        rule.origin.line = static_cast<std::uint32_t>(line_number);
        Prefix prefix;
        if (!make_prefix(src, src_length, prefix))
            fail_line(path, line_number, line, "invalid source prefix");
        rule.src.push_back(prefix);
        if (!make_prefix(dst, dst_length, prefix))
            fail_line(path, line_number, line, "invalid destination prefix");
        rule.dst.push_back(prefix);
        if (!add_ports(sport_low, sport_high, rule.sport) || !add_ports(dport_low, dport_high, rule.dport))
            fail_line(path, line_number, line, "invalid port range");

        if (protocol_mask == 0) {
            rule.any_protocol = true;
        } else if (protocol_mask == 0xff && protocol <= 255) {
            rule.any_protocol = false;
            rule.protocols.set(protocol);
        } else {
            fail_line(path, line_number, line, "protocol mask must be 0x00 or 0xFF");
        }
        table.rules.push_back(std::move(rule));
    }
    return table;
}

std::vector<TraceEntry> read_classbench_trace(const std::string& path)
{
    std::ifstream in = open_or_throw(path);
    std::vector<TraceEntry> trace;
    std::string line;
    std::size_t line_number = 0;
    while (std::getline(in, line)) {
        ++line_number;
        if (is_blank(line))
            continue;
        unsigned long src, dst, sport, dport, protocol;
        if (std::sscanf(line.c_str(), "%lu %lu %lu %lu %lu", &src, &dst, &sport, &dport, &protocol) != 5)
            fail_line(path, line_number, line, "invalid ClassBench trace line");
        if (src > UINT32_MAX || dst > UINT32_MAX || sport > 65535 || dport > 65535 || protocol > 255)
            fail_line(path, line_number, line, "trace field out of range");
        trace.push_back(TraceEntry{static_cast<std::uint32_t>(src), static_cast<std::uint32_t>(dst),
                                   static_cast<std::uint16_t>(sport), static_cast<std::uint16_t>(dport),
                                   static_cast<std::uint8_t>(protocol)});
    }
    return trace;
}

PacketView packet_from_trace(const TraceEntry& entry) noexcept
{
    PacketView packet;
    packet.status = DecodeStatus::ok;
    packet.family = Family::ipv4;
    packet.protocol = entry.protocol;
    for (int i = 0; i < 4; ++i) {
        packet.src.bytes[i] = static_cast<std::uint8_t>(entry.src >> (24 - 8 * i));
        packet.dst.bytes[i] = static_cast<std::uint8_t>(entry.dst >> (24 - 8 * i));
    }
    if (port_protocols().test(entry.protocol)) {
        packet.ports = PortsAbsence::present;
        packet.sport = entry.sport;
        packet.dport = entry.dport;
    } else {
        packet.ports = PortsAbsence::no_ports_in_protocol;
    }
    packet.ip_length = 40;
    return packet;
}

} // namespace portwall::bench
