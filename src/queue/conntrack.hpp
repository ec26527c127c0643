// Cutting connections that a new rule set drops.
//
// In flow mode only the packets that open a connection reach the queue, so a
// connection accepted under old rules would keep passing in the kernel after
// a rule change. Deleting its conntrack entry is not enough: if the local end
// sends next, its packet re-creates the entry with the directions swapped, and
// the peer's packets then pass as ESTABLISHED without being queued. Instead the
// entry keeps living and gets a bit in its conntrack mark. The flow-mode hook
// accepts only unmarked ESTABLISHED traffic, so every packet of a marked
// connection goes to the queue, where the rules in force judge it. When a later
// rule change accepts the connection again, the bit is cleared.
#pragma once

#include "classify/ruleset.hpp"
#include "queue/hooks.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace portwall {

struct ConntrackCutResult {
    bool ok = true;
    std::string error;        // what failed, with errno text; counts stay valid
    std::size_t examined = 0; // conntrack entries read from the kernel
    std::size_t judged = 0;   // entries of connections opened from outside this host
    std::size_t cut = 0;      // entries that got the mark bit: the rules now drop them
    std::size_t restored = 0; // entries whose bit was cleared: the rules accept them again
    std::size_t vanished = 0; // entries that expired between the dump and the update
    // The first few connections cut or restored, e.g. "cut tcp 198.18.0.1:40000
    // -> 198.18.0.2:8080 rule 'block-web'", so the caller can log which rule
    // closed what.
    std::vector<std::string> examples;
};

inline constexpr std::size_t conntrack_cut_max_examples = 16;

// Walk the conntrack table of the current network namespace, set `mark_bit` on
// every entry whose original direction `rules` now drops and clear it on every
// marked entry that `rules` accepts. Only connections opened towards a local
// address by a non-local peer are judged, because only their first packet
// passed the input hook. Outgoing, forwarded and host-internal connections are
// left alone. Rule hit counters are not touched.
ConntrackCutResult cut_dropped_connections(const Ruleset& rules,
                                           std::uint32_t mark_bit = default_flow_mark);

} // namespace portwall
