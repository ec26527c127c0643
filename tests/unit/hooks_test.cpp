// Hook rule texts for each mode, fail mode and queue layout, and the checks
// install_hooks makes before it runs any command. Nothing here touches the
// kernel, so these tests run without root.
#include "queue/hooks.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace portwall;

namespace {

bool contains(const std::string& text, const std::string& part)
{
    return text.find(part) != std::string::npos;
}

std::size_t count_lines_with(const std::string& text, const std::string& part)
{
    std::size_t count = 0;
    for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1))
        ++count;
    return count;
}

} // namespace

TEST_CASE("iptables text for packet mode, one queue, fail open")
{
    const HookConfig config; // defaults: packet mode, queue 0, fail open
    for (const bool ipv6 : {false, true}) {
        CAPTURE(ipv6);
        const std::string text = iptables_ruleset_text(config, ipv6);
        CHECK(text.rfind("*filter\n:PORTWALL - [0:0]\n", 0) == 0);
        CHECK(contains(text, "-A PORTWALL -i lo -j ACCEPT\n"));
        CHECK(contains(text, "-A PORTWALL -j NFQUEUE --queue-num 0 --queue-bypass\n"));
        CHECK(contains(text, "-I INPUT 1 -j PORTWALL\n"));
        CHECK(text.size() >= 7);
        CHECK(text.substr(text.size() - 7) == "COMMIT\n");
        CHECK_FALSE(contains(text, "conntrack"));
        CHECK_FALSE(contains(text, "--dport"));
    }
}

TEST_CASE("iptables text for flow mode accepts unmarked established first")
{
    HookConfig config;
    config.mode = QueueMode::flow;
    const std::string text = iptables_ruleset_text(config, false);
    // Connections cut by a rule change carry the mark and keep being queued.
    const std::size_t established =
        text.find("-A PORTWALL -m conntrack --ctstate ESTABLISHED,RELATED -m connmark ! --mark "
                  "0x400000/0x400000 -j ACCEPT\n");
    const std::size_t queue = text.find("-j NFQUEUE");
    REQUIRE(established != std::string::npos);
    REQUIRE(queue != std::string::npos);
    CHECK(established < queue);
    // NEW, UNTRACKED and INVALID are not matched, so they fall through to the queue.
    CHECK_FALSE(contains(text, "INVALID"));
    CHECK_FALSE(contains(text, "NEW"));

    config.flow_mark = 0x10;
    CHECK(contains(iptables_ruleset_text(config, true), "! --mark 0x10/0x10 -j ACCEPT\n"));
}

TEST_CASE("hooks reject a multi-bit flow mark")
{
    HookConfig config;
    config.mode = QueueMode::flow;
    for (const std::uint32_t mark : {0u, 3u, 0x80000001u}) {
        config.flow_mark = mark;
        const HookResult result = install_hooks(config);
        CHECK_FALSE(result.ok);
        CHECK(contains(result.error, "invalid flow mark"));
    }
}

TEST_CASE("iptables text for several queues balances them")
{
    HookConfig config;
    config.first_queue = 4;
    config.queue_count = 3;
    CHECK(contains(iptables_ruleset_text(config, false),
                   "-j NFQUEUE --queue-balance 4:6 --queue-bypass\n"));
    config.cpu_fanout = true;
    config.fail_open = false;
    CHECK(contains(iptables_ruleset_text(config, false),
                   "-j NFQUEUE --queue-balance 4:6 --queue-cpu-fanout\n"));
}

TEST_CASE("iptables text for fail closed keeps admin ports open")
{
    HookConfig config;
    config.fail_open = false;
    config.admin_ports = {22, 2222};

    const std::string v4 = iptables_ruleset_text(config, false);
    CHECK(contains(v4, "-A PORTWALL -p tcp -m tcp --dport 22 -j ACCEPT\n"));
    CHECK(contains(v4, "-A PORTWALL -p tcp -m tcp --dport 2222 -j ACCEPT\n"));
    CHECK(contains(v4, "-j NFQUEUE --queue-num 0\n"));
    CHECK_FALSE(contains(v4, "--queue-bypass"));
    CHECK_FALSE(contains(v4, "icmpv6"));
    CHECK(v4.find("--dport 2222") < v4.find("-j NFQUEUE"));

    // IPv6 also needs neighbour discovery, or the admin port goes dark.
    const std::string v6 = iptables_ruleset_text(config, true);
    CHECK(contains(v6, "--icmpv6-type 135 -j ACCEPT\n"));
    CHECK(contains(v6, "--icmpv6-type 136 -j ACCEPT\n"));
    CHECK(v6.find("--icmpv6-type 136") < v6.find("-j NFQUEUE"));
}

TEST_CASE("iptables text for fail open ignores admin ports")
{
    HookConfig config;
    config.admin_ports = {22};
    const std::string text = iptables_ruleset_text(config, true);
    CHECK_FALSE(contains(text, "--dport 22"));
    CHECK_FALSE(contains(text, "icmpv6-type"));
}

TEST_CASE("iptables text without loopback accept")
{
    HookConfig config;
    config.accept_loopback = false;
    CHECK_FALSE(contains(iptables_ruleset_text(config, false), "-i lo"));
}

TEST_CASE("nft text replaces its own table only")
{
    HookConfig config;
    config.mode = QueueMode::flow;
    config.fail_open = false;
    config.admin_ports = {22, 443};
    config.queue_count = 2;
    const std::string text = nft_ruleset_text(config);

    CHECK(text.rfind("table inet portwall {\n}\ndelete table inet portwall\n", 0) == 0);
    CHECK(count_lines_with(text, "table inet portwall") == 3);
    CHECK_FALSE(contains(text, "flush"));
    CHECK(contains(text, "type filter hook input priority filter; policy accept;"));
    CHECK(contains(text, "iifname \"lo\" accept\n"));
    CHECK(contains(text, "tcp dport { 22, 443 } accept\n"));
    CHECK(contains(text, "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n"));
    CHECK(contains(text, "ct state established,related ct mark & 0x400000 == 0 accept\n"));
    CHECK(contains(text, "\t\tcounter queue to 0-1\n"));
    CHECK(text.find("ct state") < text.find("queue to"));
}

TEST_CASE("nft text queue flags")
{
    HookConfig config;
    CHECK(contains(nft_ruleset_text(config), "\t\tcounter queue flags bypass to 0\n"));
    config.queue_count = 2;
    config.cpu_fanout = true;
    CHECK(contains(nft_ruleset_text(config), "\t\tcounter queue flags bypass,fanout to 0-1\n"));
    config.fail_open = false;
    CHECK(contains(nft_ruleset_text(config), "\t\tcounter queue flags fanout to 0-1\n"));
}

TEST_CASE("install rejects an invalid queue range before any command")
{
    HookConfig config;
    config.queue_count = 0;
    HookResult result = install_hooks(config);
    CHECK_FALSE(result.ok);
    CHECK(result.error == "invalid queue count 0: at least one queue is needed");

    config.first_queue = 65535;
    config.queue_count = 2;
    result = install_hooks(config);
    CHECK_FALSE(result.ok);
    CHECK(result.error ==
          "invalid queue range 65535 + 2 queues: queue numbers end at 65535");
}

TEST_CASE("backend and mode names")
{
    CHECK(hook_backend_name(HookBackend::automatic) == "automatic");
    CHECK(hook_backend_name(HookBackend::iptables) == "iptables");
    CHECK(hook_backend_name(HookBackend::nft) == "nft");
    CHECK(queue_mode_name(QueueMode::packet) == "packet");
    CHECK(queue_mode_name(QueueMode::flow) == "flow");
}

TEST_CASE("queue rule counters from iptables and nft listings")
{
    // As `iptables -S PORTWALL -v` prints them (iptables-nft 1.8.9).
    const std::string iptables_listing = "-N PORTWALL\n"
                                         "-A PORTWALL -i lo -c 4 336 -j ACCEPT\n"
                                         "-A PORTWALL -c 1234 99000 -j NFQUEUE --queue-num 3\n";
    CHECK(sum_queue_rule_packets(iptables_listing, HookBackend::iptables) == 1234u);

    // Two queue rules count together; the loopback counter does not count.
    const std::string two_rules = iptables_listing + "-A PORTWALL -c 6 500 -j NFQUEUE\n";
    CHECK(sum_queue_rule_packets(two_rules, HookBackend::iptables) == 1240u);

    const std::string nft_listing =
        "table inet portwall {\n\tchain input {\n"
        "\t\tiifname \"lo\" accept\n"
        "\t\tcounter packets 77 bytes 4620 queue flags bypass to 0-1\n\t}\n}\n";
    CHECK(sum_queue_rule_packets(nft_listing, HookBackend::nft) == 77u);

    // No queue rule, or one without a counter: no figure rather than zero.
    CHECK_FALSE(sum_queue_rule_packets("-N PORTWALL\n", HookBackend::iptables).has_value());
    CHECK_FALSE(sum_queue_rule_packets("-A PORTWALL -j NFQUEUE\n", HookBackend::iptables)
                    .has_value());
    CHECK_FALSE(sum_queue_rule_packets("\t\tqueue to 0\n", HookBackend::nft).has_value());
    CHECK_FALSE(sum_queue_rule_packets(nft_listing, HookBackend::iptables).has_value());
}
