#include "common/log.hpp"

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <unistd.h>

namespace portwall {

namespace {

std::atomic<LogLevel> current_level{LogLevel::info};

const char* level_name(LogLevel level) noexcept
{
    switch (level) {
    case LogLevel::debug:
        return "debug";
    case LogLevel::info:
        return "info";
    case LogLevel::warning:
        return "warning";
    case LogLevel::error:
        return "error";
    }
    return "?";
}

} // namespace

void set_log_level(LogLevel level) noexcept
{
    current_level.store(level, std::memory_order_relaxed);
}

LogLevel log_level() noexcept
{
    return current_level.load(std::memory_order_relaxed);
}

void log_message(LogLevel level, const char* format, ...) noexcept
{
    char line[1024];

    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    tm utc{};
    gmtime_r(&now.tv_sec, &utc);
    int length = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
                               utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                               utc.tm_min, utc.tm_sec, now.tv_nsec / 1000000, level_name(level));
    if (length < 0)
        return;

    // Keep one byte for the newline; vsnprintf reports the untruncated length.
    const std::size_t room = sizeof line - 1;
    std::va_list arguments;
    va_start(arguments, format);
    const int body = std::vsnprintf(line + length, room - length, format, arguments);
    va_end(arguments);
    if (body > 0)
        length += body;
    if (static_cast<std::size_t>(length) > room - 1)
        length = static_cast<int>(room - 1);
    line[length++] = '\n';

    // One write per line; a failed write to stderr has nowhere to be reported.
    [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, line, length);
}

RateLimiter::Decision RateLimiter::check(Clock::time_point now) noexcept
{
    const Clock::rep ticks = now.time_since_epoch().count();
    Clock::rep start = window_start_.load(std::memory_order_relaxed);
    if (start == 0 || ticks - start >= window_) {
        // A new window. The thread that wins the exchange resets the count.
        if (window_start_.compare_exchange_strong(start, ticks, std::memory_order_relaxed))
            seen_in_window_.store(0, std::memory_order_relaxed);
    }

    const std::uint64_t seen = seen_in_window_.fetch_add(1, std::memory_order_relaxed);
    const bool log = seen < burst_ || (seen - burst_) % every_ == every_ - 1;
    if (!log) {
        suppressed_.fetch_add(1, std::memory_order_relaxed);
        return {};
    }
    return {true, suppressed_.exchange(0, std::memory_order_relaxed)};
}

} // namespace portwall
