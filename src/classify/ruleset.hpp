// A rule table together with its classifier and per-rule counters, and the
// holder through which reader threads see the current one.
//
// Changes are built aside into a new Ruleset and published by one swap in
// RulesetHolder; a reader keeps the Ruleset it took until it asks again, so a
// packet is judged wholly by the old table or wholly by the new one.
#pragma once

#include "classify/classifier.hpp"
#include "classify/rule.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace portwall {

struct HitCounter {
    std::atomic<std::uint64_t> packets{0};
    std::atomic<std::uint64_t> bytes{0};

    void add(std::uint64_t packet_bytes) noexcept
    {
        packets.fetch_add(1, std::memory_order_relaxed);
        bytes.fetch_add(packet_bytes, std::memory_order_relaxed);
    }
};

class Ruleset {
public:
    Ruleset(RuleTable table, ClassifierKind kind, std::uint64_t generation);

    const RuleTable& table() const noexcept { return table_; }
    const Classifier& classifier() const noexcept { return *classifier_; }
    std::uint64_t generation() const noexcept { return generation_; }

    // Classify one packet and count the hit against the rule or the policy.
    Match evaluate(const PacketView& packet) const noexcept
    {
        const Match match = classifier_->classify(packet);
        counter(match).add(packet.ip_length);
        return match;
    }

    HitCounter& counter(const Match& match) const noexcept
    {
        return counters_[match.is_policy() ? table_.rules.size() : match.rule];
    }
    const HitCounter& rule_counter(std::size_t index) const noexcept { return counters_[index]; }
    const HitCounter& policy_counter() const noexcept { return counters_[table_.rules.size()]; }

    // Start this ruleset's counters from `previous` for rules that carry the
    // same non-empty name, so that a reload does not zero an admin's view.
    void carry_counters_from(const Ruleset& previous) noexcept;

private:
    RuleTable table_;
    std::unique_ptr<Classifier> classifier_;
    std::unique_ptr<HitCounter[]> counters_; // one per rule, then the policy
    std::uint64_t generation_;
};

// Publishes the current Ruleset to any number of reader threads.
//
// Readers poll `generation()` (one atomic load) once per batch of packets
// and call `load()` only when it changed, so the packet path takes no lock.
// `load()` and `store()` take a mutex, which only writers and readers that
// saw a change contend for.
class RulesetHolder {
public:
    std::shared_ptr<const Ruleset> load() const
    {
        std::lock_guard lock(mutex_);
        return current_;
    }

    void store(std::shared_ptr<const Ruleset> next)
    {
        const std::uint64_t generation = next ? next->generation() : 0;
        {
            std::lock_guard lock(mutex_);
            current_ = std::move(next);
        }
        generation_.store(generation, std::memory_order_release);
    }

    std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

private:
    mutable std::mutex mutex_;
    std::shared_ptr<const Ruleset> current_;
    std::atomic<std::uint64_t> generation_{0};
};

} // namespace portwall
