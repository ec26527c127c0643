// Hook rules: the netfilter rules that send packets to portwall's queues.
//
// portwall touches only its own chain (iptables) or its own table (nft) and
// the one jump to it from INPUT; it never flushes anything else.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portwall {

enum class HookBackend : std::uint8_t { automatic, iptables, nft };

// The conntrack mark bit that flags a connection whose packets must all be
// queued in flow mode. One bit, so that other users of the mark keep the rest.
inline constexpr std::uint32_t default_flow_mark = 0x00400000;

// True when `mark` has exactly one bit set, as a flow mark must.
bool valid_flow_mark(std::uint32_t mark) noexcept;

// Which packets go to the queue: every packet, or only those that conntrack
// does not place in a known connection (states NEW, UNTRACKED and INVALID).
// In flow mode, ESTABLISHED and RELATED traffic stays in the kernel unless its
// connection carries `flow_mark` in its conntrack mark (see conntrack.hpp).
enum class QueueMode : std::uint8_t { packet, flow };

struct HookConfig {
    HookBackend backend = HookBackend::automatic;
    QueueMode mode = QueueMode::packet;
    // Flow mode: the conntrack mark bit of connections whose every packet is
    // queued, because a rule change after they opened drops them.
    std::uint32_t flow_mark = default_flow_mark;
    std::uint16_t first_queue = 0;
    std::uint16_t queue_count = 1; // > 1 spreads flows over queues (--queue-balance)
    // With several queues, pick the queue by the CPU that received the packet
    // (--queue-cpu-fanout) instead of by a hash of the flow's addresses.
    bool cpu_fanout = false;
    bool fail_open = true;         // no reader: let packets pass (--queue-bypass)
    // TCP ports accepted in the kernel before the queue when failing closed, so
    // a dead daemon cannot lock the admin out.
    std::vector<std::uint16_t> admin_ports;
    // Accept packets arriving on the loopback interface in the kernel, as most
    // host firewalls do, so a drop policy does not break local services.
    bool accept_loopback = true;
};

struct HookResult {
    bool ok = true;
    std::string error;           // what failed, with the command and its output
    HookBackend used = HookBackend::iptables;
    std::string backend_reason;  // why `used` was picked, for the start log
};

std::string_view hook_backend_name(HookBackend backend) noexcept;
std::string_view queue_mode_name(QueueMode mode) noexcept;

// The rules install_hooks would load, one text per command, for logs and
// tests: iptables-restore input for IPv4 and IPv6, or an nft script.
std::string iptables_ruleset_text(const HookConfig& config, bool ipv6);
std::string nft_ruleset_text(const HookConfig& config);

// Install the hooks in the current network namespace, for IPv4 and IPv6.
// Either all of them are in place afterwards or none (a partial install is
// rolled back).
HookResult install_hooks(const HookConfig& config);

// Read the packets that reached the queue rule (IPv4 and IPv6 together) since
// the hooks were installed with `used`, from the rule counters. Returns
// nullopt and sets `error` when they cannot be read. Less the readers' own
// counts, this is the number of packets the fail mode decided.
std::optional<std::uint64_t> read_queue_rule_packets(HookBackend used, std::string& error);

// The packet counts of the queue rules in one listing: `iptables -S PORTWALL
// -v` output for the iptables backend, `nft list chain` output for nft.
// nullopt when the listing has no queue rule with a counter.
std::optional<std::uint64_t> sum_queue_rule_packets(std::string_view listing, HookBackend used);

// Replace the hooks that install_hooks put in place with `current` (whose
// backend is the one it used) by those of `next`, for a reload. Each family
// is swapped in one transaction. When the second family fails, the first is
// put back to `current`, so the hooks in force are never removed and never
// left half old, half new.
HookResult replace_hooks(const HookConfig& current, const HookConfig& next);

// Remove what install_hooks put in place. Removing hooks that are not there is
// not an error, so this is safe to call on every exit path.
HookResult remove_hooks(const HookConfig& config);

} // namespace portwall
