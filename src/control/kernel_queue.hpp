// The kernel's own counters for each bound NFQUEUE queue, as
// /proc/net/netfilter/nfnetlink_queue shows them for the reader's network
// namespace.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portwall::control {

// One line of the file: queue number, peer port id, queue total, copy mode,
// copy range, queue dropped, user dropped, id sequence, and a constant 1.
struct KernelQueueCounters {
    std::uint32_t queue = 0;
    std::uint32_t peer_portid = 0;   // netlink port id of the reader
    std::uint32_t queue_total = 0;   // packets waiting for a verdict now
    std::uint32_t copy_mode = 0;     // 0 none, 1 meta, 2 packet
    std::uint32_t copy_range = 0;    // bytes copied to userspace per packet
    std::uint64_t queue_dropped = 0; // dropped by the kernel: queue full
    std::uint64_t user_dropped = 0;  // dropped by the kernel: netlink send to the reader failed
    std::uint32_t id_sequence = 0;   // last packet id handed out
};

inline constexpr const char* kernel_queue_file = "/proc/net/netfilter/nfnetlink_queue";

// Parse the file's text. Lines that do not have the nine numbers are skipped
// and counted in `malformed_lines`.
std::vector<KernelQueueCounters> parse_kernel_queues(std::string_view text,
                                                     std::size_t& malformed_lines);

// Read kernel_queue_file. Returns an empty list and sets `error` when it
// cannot be read (the module is not loaded until a queue is bound).
std::vector<KernelQueueCounters> read_kernel_queues(std::string& error);

} // namespace portwall::control
