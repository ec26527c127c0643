#include "classify/ruleset.hpp"

#include "classify/compiled.hpp"
#include "classify/linear.hpp"

#include <string_view>
#include <unordered_map>

namespace portwall {

std::unique_ptr<Classifier> make_classifier(const RuleTable& table, ClassifierKind kind)
{
    if (kind == ClassifierKind::compiled)
        return std::make_unique<CompiledClassifier>(table);
    return std::make_unique<LinearClassifier>(table);
}

Ruleset::Ruleset(RuleTable table, ClassifierKind kind, std::uint64_t generation)
    : table_(std::move(table)),
      classifier_(make_classifier(table_, kind)),
      counters_(std::make_unique<HitCounter[]>(table_.rules.size() + 1)),
      generation_(generation)
{
}

void Ruleset::carry_counters_from(const Ruleset& previous) noexcept
{
    std::unordered_map<std::string_view, std::size_t> previous_by_name;
    for (std::size_t i = 0; i < previous.table().rules.size(); ++i) {
        const std::string& name = previous.table().rules[i].name;
        if (!name.empty())
            previous_by_name.emplace(name, i);
    }
    for (std::size_t i = 0; i < table_.rules.size(); ++i) {
        const auto found = previous_by_name.find(table_.rules[i].name);
        if (found == previous_by_name.end())
            continue;
        const HitCounter& old = previous.rule_counter(found->second);
        counters_[i].packets.store(old.packets.load(std::memory_order_relaxed), std::memory_order_relaxed);
        counters_[i].bytes.store(old.bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
    const HitCounter& old_policy = previous.policy_counter();
    HitCounter& policy = counters_[table_.rules.size()];
    policy.packets.store(old_policy.packets.load(std::memory_order_relaxed), std::memory_order_relaxed);
    policy.bytes.store(old_policy.bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

} // namespace portwall
