// The compiled classifier against the linear reference: random rule tables
// and packets, and fixed cases for edges the random search must not miss.
//
// PORTWALL_DIFF_SEED (default 1) and PORTWALL_DIFF_ITERATIONS (default 300)
// set the random search, e.g. for a long run:
//   PORTWALL_DIFF_SEED=$RANDOM PORTWALL_DIFF_ITERATIONS=20000 unit-classify-diff
#include "classify/compiled.hpp"
#include "classify/linear.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <random>
#include <string>

using namespace portwall;

namespace {

std::uint64_t env_number(const char* name, std::uint64_t fallback)
{
    const char* text = std::getenv(name);
    return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 10) : fallback;
}

// Ports that sit on range edges: both ends of the port space and the
// neighbours of well-known ports.
constexpr std::uint16_t edge_ports[] = {0, 1, 21, 22, 23, 79, 80, 81, 442, 443, 444, 1023, 1024, 65534, 65535};
constexpr std::uint8_t protocols[] = {ipproto::tcp, ipproto::udp, ipproto::udplite, ipproto::sctp,
                                      ipproto::icmp, ipproto::icmpv6, 0, 47, 50, 255};

class Generator {
public:
    explicit Generator(std::uint64_t seed) : random_(seed) {}

    std::uint32_t below(std::uint32_t bound) { return std::uniform_int_distribution<std::uint32_t>(0, bound - 1)(random_); }
    bool chance(unsigned percent) { return below(100) < percent; }

    // An address mostly inside 198.18.0.0/15 or 2001:db8::/32, sometimes
    // anywhere, so that short prefixes see both hits and misses.
    Address address(Family family)
    {
        Address address;
        address.family = family;
        const unsigned size = family == Family::ipv4 ? 4 : 16;
        for (unsigned i = 0; i < size; ++i)
            address.bytes[i] = static_cast<std::uint8_t>(below(256));
        if (chance(85)) {
            if (family == Family::ipv4) {
                address.bytes[0] = 198;
                address.bytes[1] = static_cast<std::uint8_t>(18 + below(2));
                address.bytes[2] = static_cast<std::uint8_t>(below(4)); // few values: overlaps
            } else {
                address.bytes = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, static_cast<std::uint8_t>(below(4))};
                for (unsigned i = 8; i < 16; ++i)
                    address.bytes[i] = static_cast<std::uint8_t>(below(256));
                address.bytes[8] &= 3; // few values in the second half: overlaps
            }
        }
        return address;
    }

    Prefix prefix(Family family)
    {
        const unsigned max_length = family == Family::ipv4 ? 32 : 128;
        Prefix prefix{address(family), static_cast<std::uint8_t>(below(max_length + 1))};
        for (unsigned bit = prefix.length; bit < max_length; ++bit)
            prefix.address.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
        return prefix;
    }

    std::uint16_t port() { return chance(70) ? edge_ports[below(std::size(edge_ports))] : static_cast<std::uint16_t>(below(65536)); }

    PortRange port_range()
    {
        std::uint16_t low = port();
        std::uint16_t high = chance(40) ? low : port();
        if (low > high)
            std::swap(low, high);
        return {low, high};
    }

    Family family() { return chance(50) ? Family::ipv4 : Family::ipv6; }

    Rule rule()
    {
        Rule rule;
        rule.action = chance(50) ? Action::accept : Action::drop;
        rule.any_protocol = chance(40);
        if (!rule.any_protocol) {
            if (chance(30)) {
                rule.protocols = port_protocols();
            } else {
                for (unsigned n = below(3); n-- > 0;) // zero members: a rule that never matches
                    rule.protocols.set(protocols[below(std::size(protocols))]);
                if (chance(80))
                    rule.protocols.set(protocols[below(std::size(protocols))]);
            }
        }
        for (auto* ranges : {&rule.sport, &rule.dport}) {
            if (chance(45))
                for (unsigned n = 1 + below(3); n-- > 0;)
                    ranges->push_back(port_range());
        }
        for (auto* prefixes : {&rule.src, &rule.dst}) {
            if (chance(35))
                continue;
            // Mostly one family per rule, sometimes mixed lists.
            const Family main = family();
            for (unsigned n = 1 + below(chance(70) ? 1 : 4); n-- > 0;)
                prefixes->push_back(prefix(chance(85) ? main : family()));
        }
        return rule;
    }

    PacketView packet()
    {
        PacketView packet;
        packet.status = chance(3) ? DecodeStatus::truncated_transport : DecodeStatus::ok;
        packet.family = family();
        packet.protocol = protocols[below(std::size(protocols))];
        packet.src = address(packet.family);
        packet.dst = address(packet.family);
        if (port_protocols().test(packet.protocol) && chance(90)) {
            packet.ports = PortsAbsence::present;
            packet.sport = port();
            packet.dport = port();
        } else {
            packet.ports = chance(50) ? PortsAbsence::later_fragment : PortsAbsence::no_ports_in_protocol;
        }
        packet.ip_length = 100;
        return packet;
    }

private:
    std::mt19937_64 random_;
};

std::string describe(const PacketView& packet)
{
    std::string text = packet.family == Family::ipv4 ? "ipv4" : "ipv6";
    text += " proto " + std::to_string(packet.protocol);
    text += packet.has_ports() ? " ports " + std::to_string(packet.sport) + "->" + std::to_string(packet.dport)
                               : " no ports";
    text += packet.ok() ? "" : " malformed";
    return text;
}

// Classify every packet with both classifiers; CHECK each agreement.
void expect_agreement(const RuleTable& table, const std::vector<PacketView>& packets, const CompiledLimits& limits)
{
    const LinearClassifier linear(table);
    const CompiledClassifier compiled(table, limits);
    for (std::size_t i = 0; i < packets.size(); ++i) {
        const Match expected = linear.classify(packets[i]);
        const Match got = compiled.classify(packets[i]);
        INFO("packet ", i, ": ", describe(packets[i]));
        CHECK(got.rule == expected.rule);
        CHECK(got.action == expected.action);
    }
}

Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d)
{
    Address address;
    address.bytes = {a, b, c, d};
    return address;
}

Address v6(std::uint16_t first, std::uint16_t second, std::uint16_t last)
{
    Address address;
    address.family = Family::ipv6;
    address.bytes[0] = static_cast<std::uint8_t>(first >> 8);
    address.bytes[1] = static_cast<std::uint8_t>(first);
    address.bytes[2] = static_cast<std::uint8_t>(second >> 8);
    address.bytes[3] = static_cast<std::uint8_t>(second);
    address.bytes[14] = static_cast<std::uint8_t>(last >> 8);
    address.bytes[15] = static_cast<std::uint8_t>(last);
    return address;
}

PacketView tcp_packet(Address src, Address dst, std::uint16_t sport, std::uint16_t dport)
{
    PacketView packet;
    packet.status = DecodeStatus::ok;
    packet.family = src.family;
    packet.protocol = ipproto::tcp;
    packet.src = src;
    packet.dst = dst;
    packet.ports = PortsAbsence::present;
    packet.sport = sport;
    packet.dport = dport;
    return packet;
}

} // namespace

TEST_CASE("compiled matches linear on random tables")
{
    const std::uint64_t seed = env_number("PORTWALL_DIFF_SEED", 1);
    const std::uint64_t iterations = env_number("PORTWALL_DIFF_ITERATIONS", 300);
    MESSAGE("seed ", seed, ", ", iterations, " iterations (PORTWALL_DIFF_SEED, PORTWALL_DIFF_ITERATIONS)");
    Generator generator(seed);

    for (std::uint64_t iteration = 0; iteration < iterations; ++iteration) {
        RuleTable table;
        table.policy = generator.chance(50) ? Action::accept : Action::drop;
        const std::uint32_t rule_count = generator.chance(20) ? generator.below(400) : generator.below(40);
        for (std::uint32_t r = 0; r < rule_count; ++r)
            table.rules.push_back(generator.rule());
        std::vector<PacketView> packets;
        for (int p = 0; p < 200; ++p)
            packets.push_back(generator.packet());

        // Tight limits push rules into the side table and make tiny leaves;
        // loose ones make long leaves.
        CompiledLimits limits;
        limits.leaf_size = 1 + generator.below(10);
        limits.max_boxes_per_rule = generator.chance(30) ? 1 + generator.below(3) : 256;
        INFO("seed ", seed, ", iteration ", iteration, ", ", rule_count, " rules, leaf size ", limits.leaf_size,
             ", max boxes per rule ", limits.max_boxes_per_rule);
        expect_agreement(table, packets, limits);
    }
}

TEST_CASE("compiled: rule without ports matches packets without ports")
{
    for (Family family : {Family::ipv4, Family::ipv6}) {
        RuleTable table;
        Rule ports;
        ports.dport.push_back({0, 65535}); // every port, but ports must be readable
        table.rules.push_back(ports);
        table.rules.push_back(Rule{}); // everything

        PacketView fragment = tcp_packet(family == Family::ipv4 ? v4(198, 18, 0, 1) : v6(0x2001, 0xdb8, 1),
                                         family == Family::ipv4 ? v4(198, 18, 0, 2) : v6(0x2001, 0xdb8, 2), 0, 0);
        fragment.ports = PortsAbsence::later_fragment;
        PacketView whole = fragment;
        whole.ports = PortsAbsence::present;
        whole.dport = 65535;

        const CompiledClassifier compiled(table);
        CHECK(compiled.classify(fragment).rule == 1);
        CHECK(compiled.classify(whole).rule == 0);
        expect_agreement(table, {fragment, whole}, {});
    }
}

TEST_CASE("compiled: ipv4 /0 matches no ipv6 packet")
{
    RuleTable table;
    Rule any_ipv4;
    any_ipv4.src.push_back(Prefix{v4(0, 0, 0, 0), 0});
    table.rules.push_back(any_ipv4);
    Rule any_family; // an empty list means any address of either family
    table.rules.push_back(any_family);

    const CompiledClassifier compiled(table);
    CHECK(compiled.classify(tcp_packet(v4(198, 19, 1, 1), v4(198, 18, 0, 1), 1, 2)).rule == 0);
    CHECK(compiled.classify(tcp_packet(v6(0x2001, 0xdb8, 1), v6(0x2001, 0xdb8, 2), 1, 2)).rule == 1);
}

TEST_CASE("compiled: ipv6 prefix boundary inside a word")
{
    // 2001:db8:8000::/33 splits the second 32-bit word of the address.
    RuleTable table;
    Rule upper_half;
    Address network = v6(0x2001, 0xdb8, 0);
    network.bytes[4] = 0x80;
    upper_half.dst.push_back(Prefix{network, 33});
    table.rules.push_back(upper_half);

    Address inside = v6(0x2001, 0xdb8, 7);
    inside.bytes[4] = 0xff;
    Address outside = v6(0x2001, 0xdb8, 7);
    outside.bytes[4] = 0x7f;
    const CompiledClassifier compiled(table);
    CHECK(compiled.classify(tcp_packet(v6(0x2001, 0xdb8, 1), inside, 1, 2)).rule == 0);
    CHECK(compiled.classify(tcp_packet(v6(0x2001, 0xdb8, 1), outside, 1, 2)).is_policy());
}

TEST_CASE("compiled: side table keeps rule priority")
{
    RuleTable table;
    table.policy = Action::drop;
    Rule wide; // 3 x 3 = 9 boxes, above the limit of 4 below
    wide.action = Action::accept;
    for (std::uint16_t port : {22, 80, 443}) {
        wide.sport.push_back({port, port});
        wide.dport.push_back({port, port});
    }
    Rule web;
    web.action = Action::drop;
    web.dport.push_back({80, 80});
    table.rules.push_back(web);
    table.rules.push_back(wide);

    CompiledLimits limits;
    limits.max_boxes_per_rule = 4;
    const CompiledClassifier compiled(table, limits);
    CHECK(compiled.stats().side_rules == 1);
    const Match web_match = compiled.classify(tcp_packet(v4(198, 18, 0, 1), v4(198, 18, 0, 2), 80, 80));
    CHECK(web_match.rule == 0); // the earlier tree rule wins over the side rule
    const Match ssh = compiled.classify(tcp_packet(v4(198, 18, 0, 1), v4(198, 18, 0, 2), 443, 22));
    CHECK(ssh.rule == 1);
    CHECK(ssh.action == Action::accept);
}

TEST_CASE("compiled: empty table and malformed get policy")
{
    RuleTable table;
    table.policy = Action::drop;
    const CompiledClassifier empty(table);
    const Match match = empty.classify(tcp_packet(v4(198, 18, 0, 1), v4(198, 18, 0, 2), 1, 2));
    CHECK(match.is_policy());
    CHECK(match.action == Action::drop);

    table.rules.push_back(Rule{});
    const CompiledClassifier everything(table);
    PacketView malformed = tcp_packet(v6(0x2001, 0xdb8, 1), v6(0x2001, 0xdb8, 2), 1, 2);
    malformed.status = DecodeStatus::bad_tcp_data_offset;
    CHECK(everything.classify(malformed).is_policy());
    CHECK(everything.classify(tcp_packet(v6(0x2001, 0xdb8, 1), v6(0x2001, 0xdb8, 2), 1, 2)).rule == 0);
}

TEST_CASE("compiled: rejected prefixes keep their meaning")
{
    RuleTable table;
    Rule host_bits; // 198.18.0.1/24: Prefix::contains ignores host bits in whole bytes
    host_bits.src.push_back(Prefix{v4(198, 18, 0, 1), 24});
    Rule too_long; // an IPv4 length above 32: the side table keeps rule_matches' meaning
    too_long.src.push_back(Prefix{v4(198, 18, 0, 1), 40});
    Rule backwards; // low > high contains no port
    backwards.dport.push_back({90, 80});
    Rule partial_byte; // 198.18.0.1/31: host bits in the byte the mask cuts
    partial_byte.dst.push_back(Prefix{v4(198, 18, 0, 9), 31});
    table.rules = {partial_byte, host_bits, too_long, backwards};

    std::vector<PacketView> packets;
    for (std::uint8_t last : {0, 1, 2})
        packets.push_back(tcp_packet(v4(198, 18, 0, last), v4(198, 18, 0, 9), 1, 85));
    const CompiledClassifier compiled(table);
    CHECK(compiled.stats().side_rules == 4);
    expect_agreement(table, packets, {});
}

TEST_CASE("compiled: theory worked example")
{
    // The example at the top of src/classify/compiled.cpp, checked step by step.
    RuleTable table;
    Rule ssh;
    ssh.action = Action::accept;
    ssh.any_protocol = false;
    ssh.protocols.set(ipproto::tcp);
    ssh.dport.push_back({22, 22});
    ssh.src.push_back(Prefix{v4(198, 18, 1, 0), 24});
    Rule web;
    web.action = Action::drop;
    web.any_protocol = false;
    web.protocols = port_protocols();
    web.dport.push_back({80, 89});
    web.dst.push_back(Prefix{v4(0, 0, 0, 0), 0});
    Rule lab;
    lab.action = Action::accept;
    lab.src.push_back(Prefix{v4(198, 18, 0, 0), 15});
    table.rules = {ssh, web, lab};

    CompiledLimits limits;
    limits.leaf_size = 2;
    const CompiledClassifier compiled(table, limits);
    const CompiledStats stats = compiled.stats();
    CHECK(stats.trees == 2);
    CHECK(stats.boxes == 6);
    CHECK(stats.nodes == 8);
    CHECK(stats.leaf_entries == 9);
    CHECK(stats.depth == 2);

    PacketView to_ssh = tcp_packet(v4(198, 18, 1, 7), v4(198, 19, 0, 1), 40000, 22);
    PacketView to_web = tcp_packet(v4(198, 18, 5, 5), v4(198, 19, 0, 1), 53, 85);
    to_web.protocol = ipproto::udp;
    PacketView ping = tcp_packet(v4(198, 18, 5, 5), v4(198, 19, 0, 1), 0, 0);
    ping.protocol = ipproto::icmp;
    ping.ports = PortsAbsence::no_ports_in_protocol;
    CHECK(compiled.classify(to_ssh).rule == 0);
    CHECK(compiled.classify(to_web).rule == 1);
    CHECK(compiled.classify(ping).rule == 2);
}
