#include "queue/nfqueue.hpp"
#include "queue/verdict_plan.hpp"

#include <doctest/doctest.h>

#include <linux/netfilter.h>

#include <array>
#include <vector>

using namespace portwall;

namespace {

std::vector<VerdictMessage> plan(const std::vector<PendingVerdict>& pending, bool use_batch)
{
    std::vector<VerdictMessage> out(pending.size());
    out.resize(plan_verdict_messages(pending, use_batch, out));
    return out;
}

} // namespace

TEST_CASE("verdict plan: empty batch sends nothing")
{
    CHECK(plan({}, true).empty());
}

TEST_CASE("verdict plan: single packet gets a plain verdict")
{
    const auto messages = plan({{7, NF_DROP}}, true);
    REQUIRE(messages.size() == 1);
    CHECK_FALSE(messages[0].batch);
    CHECK(messages[0].id == 7);
    CHECK(messages[0].verdict == NF_DROP);
}

TEST_CASE("verdict plan: runs become batch verdicts with their last id")
{
    const auto messages = plan({{1, NF_ACCEPT}, {2, NF_ACCEPT}, {3, NF_ACCEPT}, {4, NF_DROP},
                                {5, NF_ACCEPT}, {6, NF_ACCEPT}},
                               true);
    REQUIRE(messages.size() == 3);
    CHECK(messages[0].batch);
    CHECK(messages[0].id == 3);
    CHECK(messages[0].verdict == NF_ACCEPT);
    CHECK_FALSE(messages[1].batch);
    CHECK(messages[1].id == 4);
    CHECK(messages[1].verdict == NF_DROP);
    CHECK(messages[2].batch);
    CHECK(messages[2].id == 6);
    CHECK(messages[2].verdict == NF_ACCEPT);
}

TEST_CASE("verdict plan: alternating verdicts are sent one by one")
{
    const auto messages = plan({{10, NF_ACCEPT}, {11, NF_DROP}, {12, NF_ACCEPT}}, true);
    REQUIRE(messages.size() == 3);
    for (std::size_t i = 0; i < messages.size(); ++i) {
        CHECK_FALSE(messages[i].batch);
        CHECK(messages[i].id == 10 + i);
    }
    CHECK(messages[1].verdict == NF_DROP);
}

TEST_CASE("verdict plan: batching off names every packet")
{
    const auto messages = plan({{1, NF_DROP}, {2, NF_DROP}, {3, NF_DROP}}, false);
    REQUIRE(messages.size() == 3);
    for (std::size_t i = 0; i < messages.size(); ++i) {
        CHECK_FALSE(messages[i].batch);
        CHECK(messages[i].id == i + 1);
        CHECK(messages[i].verdict == NF_DROP);
    }
}

TEST_CASE("verdict plan: output never overflows")
{
    const std::vector<PendingVerdict> pending{{1, NF_ACCEPT}, {2, NF_DROP}, {3, NF_ACCEPT}};
    std::array<VerdictMessage, 2> out{};
    CHECK(plan_verdict_messages(pending, true, out) == 2);
    CHECK(out[1].id == 2);
}

TEST_CASE("kernel queue stats: the requested queue is parsed")
{
    const char* text = "    0  12345     3 2   512     7     2       99 1\n"
                       "    1  12346     0 2   512     0     0        5 1\n";
    const auto zero = parse_kernel_queue_stats(text, 0);
    REQUIRE(zero.has_value());
    CHECK(zero->port_id == 12345);
    CHECK(zero->waiting == 3);
    CHECK(zero->queue_dropped == 7);
    CHECK(zero->user_dropped == 2);
    CHECK(zero->last_packet_id == 99);

    const auto one = parse_kernel_queue_stats(text, 1);
    REQUIRE(one.has_value());
    CHECK(one->queue == 1);
    CHECK(one->last_packet_id == 5);
}

TEST_CASE("kernel queue stats: absent queue and bad lines")
{
    CHECK_FALSE(parse_kernel_queue_stats("", 0).has_value());
    CHECK_FALSE(parse_kernel_queue_stats("0 1 2 3 4 5 6 7 1\n", 3).has_value());
    CHECK_FALSE(parse_kernel_queue_stats("garbage line\n0 1 x\n", 0).has_value());
}
