#include "queue/verdict_plan.hpp"

namespace portwall {

std::size_t plan_verdict_messages(std::span<const PendingVerdict> pending, bool use_batch,
                                  std::span<VerdictMessage> out) noexcept
{
    std::size_t written = 0;
    std::size_t run_start = 0;
    for (std::size_t i = 0; i < pending.size() && written < out.size(); ++i) {
        const bool run_ends = i + 1 == pending.size() || pending[i + 1].verdict != pending[i].verdict;
        if (!run_ends)
            continue;
        if (use_batch && i > run_start) {
            out[written++] = {true, pending[i].id, pending[i].verdict};
        } else {
            for (std::size_t k = run_start; k <= i && written < out.size(); ++k)
                out[written++] = {false, pending[k].id, pending[k].verdict};
        }
        run_start = i + 1;
    }
    return written;
}

} // namespace portwall
