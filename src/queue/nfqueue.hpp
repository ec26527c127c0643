// The NFQUEUE driver: reads packets that netfilter queues to userspace,
// judges each with the current Ruleset and returns one verdict per packet.
//
// It uses libnetfilter_queue's libmnl-based message helpers (nfq_nlmsg_*)
// over one netlink socket per queue. Each QueueReader belongs to one thread;
// several readers share one RulesetHolder.
#pragma once

#include "classify/ruleset.hpp"
#include "decode/packet.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace portwall {

struct QueueOptions {
    std::uint16_t queue = 0;

    // Bytes of each packet copied to userspace. Decoding needs the IP header
    // (IPv4: up to 60 bytes; IPv6: 40 plus its extension header chain) and
    // the first 8 bytes of the transport header. 512 covers IPv6 with a few
    // hundred bytes of extension headers; a header beyond the copy range is
    // decoded as "ports not captured", never read.
    std::uint32_t copy_range = 512;

    // Packets the kernel holds for this queue before it applies the fail mode.
    std::uint32_t max_length = 4096;

    // Socket receive buffer in bytes (SO_RCVBUFFORCE, so root may exceed
    // net.core.rmem_max). When it overflows the kernel drops (or, failing
    // open, accepts) the packets it cannot deliver and reports ENOBUFS.
    int receive_buffer = 8 * 1024 * 1024;

    // NFQA_CFG_F_FAIL_OPEN: accept instead of drop when the queue is full.
    // NOTE: the kernel counts no packet it accepts this way (Linux 6.x
    // /proc/net/netfilter/nfnetlink_queue has no such column), so neither
    // does the reader; the hook rule's own packet counter is the only trace.
    bool fail_open = false;

    // Messages read per recvmmsg call, and so the most packets judged between
    // two checks of the ruleset generation.
    std::uint32_t batch_size = 64;

    // Send one NFQNL_MSG_VERDICT_BATCH for a run of consecutive packets with
    // the same verdict instead of one verdict message each.
    bool batch_verdicts = true;
};

// Counters of one reader. Written only by its thread, with relaxed atomics,
// so that other threads (status, exit report) may read them at any time.
struct QueueCounters {
    using Counter = std::atomic<std::uint64_t>;

    Counter packets{0};  // packet messages with a packet id
    Counter accepted{0};
    Counter dropped{0};
    std::array<Counter, decode_status_count> malformed{}; // by DecodeStatus, [ok] unused
    Counter missing_payload{0};    // no NFQA_PAYLOAD: judged by the policy
    Counter no_ruleset{0};         // no ruleset published yet: judged by the fail mode
    Counter enobufs{0};            // receive buffer overflows reported by the kernel
    Counter truncated_messages{0}; // messages larger than the receive slot (MSG_TRUNC)
    Counter unusable_messages{0};  // packet messages without a packet id
    Counter verdict_messages{0};   // NFQNL_MSG_VERDICT sent
    Counter batch_verdict_messages{0}; // NFQNL_MSG_VERDICT_BATCH sent
    Counter verdict_errors{0};     // failed sends and error replies from the kernel
    Counter batches{0};            // recvmmsg calls that returned messages

    std::uint64_t malformed_total() const noexcept;
};

// The kernel's own counters of one queue, from /proc/net/netfilter/nfnetlink_queue
// of the current network namespace.
struct KernelQueueStats {
    std::uint16_t queue = 0;
    std::uint32_t port_id = 0;
    std::uint64_t waiting = 0;      // packets queued and waiting for a verdict
    std::uint64_t queue_dropped = 0; // dropped because the queue was full
    std::uint64_t user_dropped = 0;  // dropped because delivery to the socket failed
    std::uint64_t last_packet_id = 0;
};

// Read the kernel's counters of `queue`; nullopt when no process binds it.
std::optional<KernelQueueStats> read_kernel_queue_stats(std::uint16_t queue);

// Find `queue` in the text of /proc/net/netfilter/nfnetlink_queue. Lines
// without the numbers expected are skipped.
std::optional<KernelQueueStats> parse_kernel_queue_stats(std::string_view text,
                                                         std::uint16_t queue);

class QueueReader {
public:
    // Open a netlink socket, bind `options.queue` and configure it. On
    // failure returns nullptr and sets `error` to what failed, naming the
    // queue and the system error. The reader judges packets with
    // `holder`'s current Ruleset; `holder` must outlive the reader.
    static std::unique_ptr<QueueReader> open(const QueueOptions& options,
                                             const RulesetHolder& holder, std::string& error);

    ~QueueReader();
    QueueReader(const QueueReader&) = delete;
    QueueReader& operator=(const QueueReader&) = delete;

    // Read and judge packets until stop() is called, then judge what is
    // still in the socket and return. Returns false, with error(), when the
    // socket fails in a way the reader cannot survive (ENOBUFS is survived).
    bool run();

    // Switch the fail mode (NFQA_CFG_F_FAIL_OPEN, and the verdict for packets
    // that arrive before any ruleset) while run() serves. Safe from any
    // thread: the reader's thread sends the change on its next turn and logs
    // the outcome.
    void set_fail_open(bool fail_open) noexcept;

    // Ask run() to return. Safe from any thread; does no work but a write to
    // an eventfd.
    void stop() noexcept;

    std::uint16_t queue() const noexcept { return options_.queue; }
    const QueueOptions& options() const noexcept { return options_; }
    const QueueCounters& counters() const noexcept { return counters_; }
    const std::string& error() const noexcept { return error_; }

private:
    struct Impl;

    QueueReader(const QueueOptions& options, const RulesetHolder& holder);

    QueueOptions options_;
    QueueCounters counters_;
    std::string error_;
    std::unique_ptr<Impl> impl_;
};


// Every queue's line of /proc/net/netfilter/nfnetlink_queue, parsed line by
// line with parse_kernel_queue_stats. Blank lines are skipped, and lines it
// cannot parse are counted in `malformed_lines`.
std::vector<KernelQueueStats> parse_all_kernel_queue_stats(std::string_view text,
                                                           std::size_t& malformed_lines);

// Read the counters of every queue bound in the current network namespace.
// Returns an empty list and sets `error` when the file cannot be read (it
// exists only once nfnetlink_queue is loaded), or returns the queues read
// and sets `error` naming the number of lines not understood.
std::vector<KernelQueueStats> read_all_kernel_queue_stats(std::string& error);

} // namespace portwall
