#include "classify/linear.hpp"

namespace portwall {

Match LinearClassifier::classify(const PacketView& packet) const noexcept
{
    if (packet.ok()) {
        for (std::size_t i = 0; i < table_.rules.size(); ++i) {
            if (rule_matches(table_.rules[i], packet))
                return Match{static_cast<std::uint32_t>(i), table_.rules[i].action};
        }
    }
    return Match{Match::policy, table_.policy};
}

std::size_t LinearClassifier::memory_bytes() const noexcept
{
    std::size_t bytes = sizeof(*this) + table_.rules.capacity() * sizeof(Rule);
    for (const Rule& rule : table_.rules) {
        bytes += (rule.sport.capacity() + rule.dport.capacity()) * sizeof(PortRange);
        bytes += (rule.src.capacity() + rule.dst.capacity()) * sizeof(Prefix);
    }
    return bytes;
}

} // namespace portwall
