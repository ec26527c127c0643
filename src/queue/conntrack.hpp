// Cutting connections that a new rule set drops.
//
// In flow mode only the packets that open a connection reach the queue, so a
// connection accepted under old rules would keep passing in the kernel after
// a rule change. Deleting its conntrack entry sends its next packet back to
// the queue, where the new rules judge it. Conntrack classifies that packet as
// NEW, or as INVALID when nf_conntrack_tcp_loose is 0, and both are queued.
#pragma once

#include "classify/ruleset.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace portwall {

struct ConntrackCutResult {
    bool ok = true;
    std::string error;      // what failed, with errno text; counts stay valid
    std::size_t examined = 0; // conntrack entries read from the kernel
    std::size_t judged = 0;   // entries of connections opened from outside this host
    std::size_t deleted = 0;
    std::size_t vanished = 0; // entries that expired between the dump and the delete
    // The first few connections cut, e.g. "tcp 198.18.0.1:40000 -> 198.18.0.2:8080
    // rule 'block-web'", so the caller can log which rule closed what.
    std::vector<std::string> examples;
};

inline constexpr std::size_t conntrack_cut_max_examples = 16;

// Walk the conntrack table of the current network namespace and delete every
// entry whose original direction `rules` now drops. Only connections opened
// towards a local address by a non-local peer are judged, because only their
// first packet passed the input hook. Outgoing, forwarded and host-internal
// connections are left alone. Rule hit counters are not touched.
ConntrackCutResult cut_dropped_connections(const Ruleset& rules);

// The same, returning the number of deleted entries and filling `error` on
// failure (empty on success).
std::size_t cut_dropped_connections(const Ruleset& rules, std::string& error);

} // namespace portwall
