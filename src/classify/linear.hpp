// The linear reference classifier: tries every rule in order.
//
// Slow on large tables but obviously right; every other classifier is tested
// against it.
#pragma once

#include "classify/classifier.hpp"

namespace portwall {

class LinearClassifier final : public Classifier {
public:
    explicit LinearClassifier(const RuleTable& table) : table_(table) {}

    Match classify(const PacketView& packet) const noexcept override;
    std::size_t memory_bytes() const noexcept override;
    std::string_view kind() const noexcept override { return "linear"; }

private:
    RuleTable table_;
};

} // namespace portwall
