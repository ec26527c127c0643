// Planning the verdict messages for one batch of judged packets, kept apart
// from the netlink code so that the batching rule can be tested on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace portwall {

struct PendingVerdict {
    std::uint32_t id;
    std::uint32_t verdict; // NF_ACCEPT or NF_DROP
};

struct VerdictMessage {
    // true: NFQNL_MSG_VERDICT_BATCH, which applies `verdict` to every queued
    // packet with an id up to `id`; false: NFQNL_MSG_VERDICT for `id` alone.
    bool batch = false;
    std::uint32_t id = 0;
    std::uint32_t verdict = 0;
};

// Plan the messages that give `pending` (in the order the kernel queued the
// packets) their verdicts. With `use_batch`, each run of two or more equal
// verdicts becomes one batch message naming the run's last id. That is exact
// only when every packet queued before the run already has its verdict.
// `out` needs room for pending.size() messages. Returns the number written.
std::size_t plan_verdict_messages(std::span<const PendingVerdict> pending, bool use_batch,
                                  std::span<VerdictMessage> out) noexcept;

} // namespace portwall
