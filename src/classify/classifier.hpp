// The classifier interface: a packet view in, the first matching rule out.
//
// Callers (the queue driver, the replay driver, benchmarks) hold a
// Classifier and never know which implementation they have, so a faster one
// can replace the linear reference without touching them.
#pragma once

#include "classify/rule.hpp"
#include "decode/packet.hpp"

#include <cstdint>
#include <memory>
#include <string_view>

namespace portwall {

struct Match {
    static constexpr std::uint32_t policy = UINT32_MAX;

    std::uint32_t rule = policy; // index into RuleTable::rules, or `policy`
    Action action = Action::accept;

    bool is_policy() const noexcept { return rule == policy; }
};

class Classifier {
public:
    virtual ~Classifier() = default;

    // Classify one packet. Must not allocate, lock or throw. A malformed packet
    // (packet.status != ok) always gets the policy.
    virtual Match classify(const PacketView& packet) const noexcept = 0;

    // Bytes of memory held by the compiled form, for status and benchmarks.
    virtual std::size_t memory_bytes() const noexcept = 0;

    virtual std::string_view kind() const noexcept = 0;
};

enum class ClassifierKind : std::uint8_t { linear, compiled };

// Build a classifier over `table`. The classifier keeps its own copy of what
// it needs; `table` may be destroyed afterwards.
std::unique_ptr<Classifier> make_classifier(const RuleTable& table, ClassifierKind kind);

} // namespace portwall
