// Logging to stderr for the daemon and the commands, and a limiter for
// events that can repeat once per packet.
//
// This is the lowest layer above the standard library: queue, control and cli
// use it; decode and classify never log.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace portwall {

enum class LogLevel : std::uint8_t { debug, info, warning, error };

// Messages below this level are discarded. The default is info.
void set_log_level(LogLevel level) noexcept;
LogLevel log_level() noexcept;

// Write one line `TIME LEVEL: MESSAGE` to stderr with a single write(2), so
// lines from several threads never interleave. Formats into a fixed stack
// buffer (a longer message is cut at 1,000 bytes), so it never allocates and
// may be called from the packet path. It is noexcept.
void log_message(LogLevel level, const char* format, ...) noexcept
    __attribute__((format(printf, 2, 3)));

#define PORTWALL_LOG(level, ...)                                                                \
    do {                                                                                        \
        if ((level) >= ::portwall::log_level())                                                 \
            ::portwall::log_message((level), __VA_ARGS__);                                      \
    } while (false)

#define LOG_DEBUG(...) PORTWALL_LOG(::portwall::LogLevel::debug, __VA_ARGS__)
#define LOG_INFO(...) PORTWALL_LOG(::portwall::LogLevel::info, __VA_ARGS__)
#define LOG_WARNING(...) PORTWALL_LOG(::portwall::LogLevel::warning, __VA_ARGS__)
#define LOG_ERROR(...) PORTWALL_LOG(::portwall::LogLevel::error, __VA_ARGS__)

// Decides which occurrences of one repeating event get logged: the first
// `burst` in a window, then one in every `every`. A new window, and so a new
// burst, starts `window` after the previous one started. The caller keeps a counter of all
// occurrences itself, so a suppressed event is never lost from the numbers.
//
// Safe to share between threads: it uses only relaxed atomics, so two threads
// may at worst both log the first event of a new window.
class RateLimiter {
public:
    using Clock = std::chrono::steady_clock;

    RateLimiter(std::uint32_t burst, std::uint32_t every, Clock::duration window) noexcept
        : burst_(burst), every_(every == 0 ? 1 : every), window_(window.count())
    {
    }

    struct Decision {
        bool log = false;
        // Occurrences suppressed since the last logged one, to print with it.
        std::uint64_t suppressed = 0;
    };

    Decision check(Clock::time_point now) noexcept;

private:
    const std::uint32_t burst_;
    const std::uint32_t every_;
    const Clock::rep window_;
    std::atomic<Clock::rep> window_start_{0};
    std::atomic<std::uint64_t> seen_in_window_{0};
    std::atomic<std::uint64_t> suppressed_{0};
};

} // namespace portwall
