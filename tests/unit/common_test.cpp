#include "common/log.hpp"

#include <doctest/doctest.h>

#include <chrono>

using namespace portwall;
using namespace std::chrono_literals;

TEST_CASE("rate limiter: burst, then one in every N")
{
    RateLimiter limiter(3, 10, 60s);
    const auto now = RateLimiter::Clock::time_point(1h);

    int logged = 0;
    for (int i = 0; i < 3; ++i) {
        const auto decision = limiter.check(now);
        CHECK(decision.log);
        CHECK(decision.suppressed == 0);
        logged += decision.log;
    }
    // Occurrences 4..12 are suppressed; the 13th is the 10th after the burst.
    for (int i = 0; i < 9; ++i)
        CHECK_FALSE(limiter.check(now).log);
    const auto tenth = limiter.check(now);
    CHECK(tenth.log);
    CHECK(tenth.suppressed == 9);
    CHECK_FALSE(limiter.check(now).log);
    CHECK(logged == 3);
}

TEST_CASE("rate limiter: new window starts a new burst")
{
    RateLimiter limiter(2, 1000, 60s);
    const auto start = RateLimiter::Clock::time_point(1h);

    CHECK(limiter.check(start).log);
    CHECK(limiter.check(start + 1s).log);
    CHECK_FALSE(limiter.check(start + 2s).log);
    CHECK_FALSE(limiter.check(start + 59s).log);

    const auto next = limiter.check(start + 60s);
    CHECK(next.log);
    CHECK(next.suppressed == 2);
    CHECK(limiter.check(start + 61s).log);
    CHECK_FALSE(limiter.check(start + 62s).log);
}

TEST_CASE("rate limiter: every of zero counts as one")
{
    RateLimiter limiter(0, 0, 60s);
    const auto now = RateLimiter::Clock::time_point(1h);
    CHECK(limiter.check(now).log);
    CHECK(limiter.check(now).log);
}
