// First-match semantics of the rule table, on packet views built by hand.
#include "classify/classifier.hpp"
#include "classify/ruleset.hpp"

#include <doctest/doctest.h>

using namespace portwall;

namespace {

Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d)
{
    Address address;
    address.family = Family::ipv4;
    address.bytes = {a, b, c, d};
    return address;
}

Address v6_doc(std::uint8_t last)
{
    Address address;
    address.family = Family::ipv6;
    address.bytes = {0x20, 0x01, 0x0d, 0xb8};
    address.bytes[15] = last;
    return address;
}

PacketView packet(Address src, Address dst, std::uint8_t protocol, std::uint16_t sport, std::uint16_t dport)
{
    PacketView view;
    view.status = DecodeStatus::ok;
    view.family = src.family;
    view.protocol = protocol;
    view.src = src;
    view.dst = dst;
    view.ports = PortsAbsence::present;
    view.sport = sport;
    view.dport = dport;
    view.ip_length = 60;
    return view;
}

Rule port_rule(Action action, std::uint16_t dport)
{
    Rule rule;
    rule.action = action;
    rule.any_protocol = false;
    rule.protocols.set(ipproto::tcp);
    rule.dport.push_back({dport, dport});
    return rule;
}

} // namespace

TEST_CASE("classify: first matching rule decides")
{
    RuleTable table;
    table.policy = Action::drop;
    table.rules.push_back(port_rule(Action::drop, 22));
    table.rules.push_back(port_rule(Action::accept, 22));
    table.rules.push_back(port_rule(Action::accept, 80));

    for (ClassifierKind kind : {ClassifierKind::linear, ClassifierKind::compiled}) {
        auto classifier = make_classifier(table, kind);
        const Match ssh = classifier->classify(packet(v4(198, 18, 0, 1), v4(198, 18, 0, 2), ipproto::tcp, 40000, 22));
        CHECK(ssh.rule == 0);
        CHECK(ssh.action == Action::drop);

        const Match web = classifier->classify(packet(v6_doc(1), v6_doc(2), ipproto::tcp, 40000, 80));
        CHECK(web.rule == 2);
        CHECK(web.action == Action::accept);

        const Match other = classifier->classify(packet(v4(198, 18, 0, 1), v4(198, 18, 0, 2), ipproto::tcp, 1, 443));
        CHECK(other.is_policy());
        CHECK(other.action == Action::drop);
    }
}

TEST_CASE("classify: unreadable ports never match a port rule")
{
    RuleTable table;
    table.policy = Action::accept;
    table.rules.push_back(port_rule(Action::drop, 3306));
    Rule any_tcp;
    any_tcp.action = Action::drop;
    any_tcp.any_protocol = false;
    any_tcp.protocols.set(ipproto::tcp);
    any_tcp.name = "all-tcp";
    table.rules.push_back(any_tcp);

    PacketView later_fragment = packet(v4(198, 18, 0, 1), v4(198, 18, 0, 2), ipproto::tcp, 0, 0);
    later_fragment.ports = PortsAbsence::later_fragment;
    later_fragment.fragment = true;

    const Match match = make_classifier(table, ClassifierKind::linear)->classify(later_fragment);
    CHECK(match.rule == 1);
    CHECK(rule_display_name(table, match.rule) == "all-tcp");
    CHECK(rule_display_name(table, 0) == "#1");
}

TEST_CASE("classify: malformed packet gets the policy")
{
    RuleTable table;
    table.policy = Action::drop;
    Rule everything;
    everything.action = Action::accept;
    table.rules.push_back(everything);

    PacketView malformed = packet(v4(198, 18, 0, 1), v4(198, 18, 0, 2), ipproto::tcp, 1, 2);
    malformed.status = DecodeStatus::bad_tcp_data_offset;

    const Match match = make_classifier(table, ClassifierKind::linear)->classify(malformed);
    CHECK(match.is_policy());
    CHECK(match.action == Action::drop);
}

TEST_CASE("classify: prefixes respect family and length")
{
    Prefix v4_net{v4(198, 18, 0, 0), 15};
    CHECK(v4_net.contains(v4(198, 19, 255, 255)));
    CHECK_FALSE(v4_net.contains(v4(198, 20, 0, 0)));
    CHECK_FALSE(v4_net.contains(v6_doc(1)));

    Prefix v6_net{v6_doc(0), 32};
    CHECK(v6_net.contains(v6_doc(77)));
    CHECK_FALSE(v6_net.contains(v4(32, 1, 13, 184)));

    Prefix everything_v4{v4(0, 0, 0, 0), 0};
    CHECK(everything_v4.contains(v4(255, 255, 255, 255)));
    CHECK_FALSE(everything_v4.contains(v6_doc(1)));
}

TEST_CASE("ruleset: counters follow rules by name across reloads")
{
    RuleTable table;
    Rule web = port_rule(Action::accept, 80);
    web.name = "web";
    table.rules.push_back(web);

    Ruleset first(table, ClassifierKind::linear, 1);
    first.evaluate(packet(v4(198, 18, 0, 1), v4(198, 18, 0, 2), ipproto::tcp, 5, 80));
    first.evaluate(packet(v4(198, 18, 0, 1), v4(198, 18, 0, 2), ipproto::tcp, 5, 81));

    table.rules.insert(table.rules.begin(), port_rule(Action::drop, 25));
    Ruleset second(table, ClassifierKind::linear, 2);
    second.carry_counters_from(first);
    CHECK(second.rule_counter(0).packets.load() == 0);
    CHECK(second.rule_counter(1).packets.load() == 1);
    CHECK(second.rule_counter(1).bytes.load() == 60);
    CHECK(second.policy_counter().packets.load() == 1);
}
