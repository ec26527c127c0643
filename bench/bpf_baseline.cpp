#include "bpf_baseline.hpp"

#include "classify/classifier.hpp"

#include <arpa/inet.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

namespace portwall::bench {

namespace {

void put16(std::uint8_t* at, std::uint16_t value) noexcept
{
    at[0] = static_cast<std::uint8_t>(value >> 8);
    at[1] = static_cast<std::uint8_t>(value);
}

// Transport header bytes after the IP header; returns their count.
std::uint32_t write_transport(const PacketView& packet, std::uint8_t* at) noexcept
{
    switch (packet.protocol) {
    case ipproto::tcp:
        put16(at, packet.sport);
        put16(at + 2, packet.dport);
        at[12] = 5 << 4; // data offset: 5 words, no options
        return 20;
    case ipproto::udp:
    case ipproto::udplite:
        put16(at, packet.sport);
        put16(at + 2, packet.dport);
        put16(at + 4, 8);
        return 8;
    case ipproto::sctp:
        put16(at, packet.sport);
        put16(at + 2, packet.dport);
        return 12;
    case ipproto::icmp:
    case ipproto::icmpv6:
        at[0] = packet.icmp_type;
        at[1] = packet.icmp_code;
        return 8;
    default:
        return 8;
    }
}

std::string prefix_text(const Prefix& prefix)
{
    char text[INET6_ADDRSTRLEN] = {};
    const int family = prefix.address.family == Family::ipv4 ? AF_INET : AF_INET6;
    inet_ntop(family, prefix.address.bytes.data(), text, sizeof text);
    return std::string(text) + "/" + std::to_string(prefix.length);
}

// "(A or B or ...)" over `items`, or an empty string for no items.
template <typename Items, typename Format>
std::string any_of(const Items& items, Format format)
{
    std::string text;
    for (const auto& item : items)
        text += (text.empty() ? "(" : " or ") + format(item);
    return text.empty() ? text : text + ")";
}

struct PcapCloser {
    void operator()(pcap_t* handle) const noexcept { pcap_close(handle); }
};

} // namespace

RawPacket synthesize_packet(const PacketView& packet) noexcept
{
    RawPacket raw;
    std::uint8_t* ip = raw.bytes.data();
    std::uint32_t header_length = 0;
    if (packet.family == Family::ipv4) {
        header_length = 20;
        ip[0] = 0x45;
        ip[8] = 64; // TTL
        ip[9] = packet.protocol;
        std::copy_n(packet.src.bytes.begin(), 4, ip + 12);
        std::copy_n(packet.dst.bytes.begin(), 4, ip + 16);
    } else {
        header_length = 40;
        ip[0] = 0x60;
        ip[6] = packet.protocol;
        ip[7] = 64; // hop limit
        std::copy_n(packet.src.bytes.begin(), 16, ip + 8);
        std::copy_n(packet.dst.bytes.begin(), 16, ip + 24);
    }
    const std::uint32_t transport_length = write_transport(packet, ip + header_length);
    raw.length = header_length + transport_length;
    if (packet.family == Family::ipv4)
        put16(ip + 2, static_cast<std::uint16_t>(raw.length));
    else
        put16(ip + 4, static_cast<std::uint16_t>(transport_length));
    return raw;
}

std::string bpf_filter_expression(const Rule& rule)
{
    std::vector<std::string> terms;
    if (!rule.any_protocol) {
        std::vector<unsigned> protocols;
        for (unsigned p = 0; p < 256; ++p) {
            if (rule.protocols.test(p))
                protocols.push_back(p);
        }
        terms.push_back(any_of(protocols, [](unsigned p) {
            return "ip proto " + std::to_string(p) + " or ip6 proto " + std::to_string(p);
        }));
    }
    for (auto [ranges, direction] : {std::pair{&rule.sport, "src"}, std::pair{&rule.dport, "dst"}}) {
        terms.push_back(any_of(*ranges, [direction](const PortRange& range) {
            return std::string(direction) + " portrange " + std::to_string(range.low) + "-" +
                   std::to_string(range.high);
        }));
    }
    for (auto [prefixes, direction] : {std::pair{&rule.src, "src"}, std::pair{&rule.dst, "dst"}}) {
        terms.push_back(any_of(*prefixes, [direction](const Prefix& prefix) {
            return std::string(direction) + " net " + prefix_text(prefix);
        }));
    }

    std::string expression;
    for (const std::string& term : terms) {
        if (!term.empty())
            expression += (expression.empty() ? "" : " and ") + term;
    }
    return expression;
}

BpfBaseline::BpfBaseline(const RuleTable& table)
{
    std::unique_ptr<pcap_t, PcapCloser> handle(pcap_open_dead(DLT_RAW, 65535));
    if (!handle)
        throw std::runtime_error("pcap_open_dead(DLT_RAW) failed");
    programs_.reserve(table.rules.size());
    for (std::size_t i = 0; i < table.rules.size(); ++i) {
        const std::string expression = bpf_filter_expression(table.rules[i]);
        bpf_program program{};
        if (pcap_compile(handle.get(), &program, expression.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
            for (bpf_program& compiled : programs_)
                pcap_freecode(&compiled);
            throw std::runtime_error("rule " + std::to_string(i + 1) + ": pcap_compile failed on '" +
                                     expression + "': " + pcap_geterr(handle.get()));
        }
        programs_.push_back(program);
    }
}

BpfBaseline::~BpfBaseline()
{
    for (bpf_program& program : programs_)
        pcap_freecode(&program);
}

std::uint32_t BpfBaseline::first_match(const RawPacket& packet) const noexcept
{
    pcap_pkthdr header{};
    header.caplen = packet.length;
    header.len = packet.length;
    for (std::size_t i = 0; i < programs_.size(); ++i) {
        if (pcap_offline_filter(&programs_[i], &header, packet.bytes.data()) != 0)
            return static_cast<std::uint32_t>(i);
    }
    return Match::policy;
}

std::size_t BpfBaseline::instruction_count() const noexcept
{
    std::size_t count = 0;
    for (const bpf_program& program : programs_)
        count += program.bf_len;
    return count;
}

} // namespace portwall::bench
