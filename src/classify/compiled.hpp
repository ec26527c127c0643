// The compiled classifier: decision trees per address family and partition,
// built from the rule table, plus a linear side table for rules that expand
// too far.
//
// The theory of operation, with a worked example and the limits it enforces,
// is the comment at the top of compiled.cpp.
#pragma once

#include "classify/classifier.hpp"
#include "classify/rule.hpp"

#include <array>
#include <cstdint>
#include <vector>

namespace portwall {

// Limits the compiled classifier enforces while it builds its trees.
struct CompiledLimits {
    // Boxes one rule may expand into per address family, the product of its
    // list lengths. A rule above it is kept in the side table instead.
    std::uint32_t max_boxes_per_rule = 256;
    // Boxes a leaf may hold before the builder splits it.
    std::uint32_t leaf_size = 16;
    // Depth at which the builder stops splitting whatever the leaf size.
    std::uint32_t max_depth = 48;
};

// Shape of a compiled table, for benchmarks and `status`.
struct CompiledStats {
    std::size_t trees = 0;        // decision trees over both families
    std::size_t boxes = 0;        // hyperrectangles in all trees
    std::size_t nodes = 0;        // inner nodes and leaves of all trees
    std::size_t leaf_entries = 0; // box copies stored in leaves, shared leaves once
    std::size_t max_leaf = 0;     // largest leaf, in boxes
    std::size_t depth = 0;        // deepest leaf
    std::size_t side_rules = 0;   // rules checked linearly next to the trees
};

namespace compiled_detail {

inline constexpr unsigned max_dims = 11;
inline constexpr std::uint32_t no_rule = UINT32_MAX;

// One search key: protocol, source port, destination port, then the source
// and destination address as alternating 32-bit words (IPv4 uses only the
// first word of each). A port of 65536 means "no readable ports".
using Key = std::array<std::uint32_t, max_dims>;

// A hyperrectangle: an inclusive range per dimension, and the rule it
// belongs to.
struct Box {
    std::array<std::uint32_t, max_dims> low{};
    std::array<std::uint32_t, max_dims> high{};
    std::uint32_t rule = 0;
};

// A binary decision tree over `dims` dimensions (HyperSplit-style): each
// inner node compares one key word with a threshold, each leaf lists boxes in
// rule order and the first box containing the key decides.
class DecisionTree {
public:
    // Build from `boxes`, which must be ordered by rule index, with a root
    // table on `root_dim` (none when negative). Throws std::length_error when
    // the tree would exceed its 2^28-entry encoding.
    void build(unsigned dims, const std::vector<Box>& boxes, const CompiledLimits& limits, int root_dim);

    // Index of the first rule whose box contains `key` if it is below
    // `bound`, else `bound`.
    std::uint32_t lookup(const Key& key, std::uint32_t bound) const noexcept;

    // Lowest rule index in the tree, or no_rule for an empty tree.
    std::uint32_t first_rule() const noexcept { return first_rule_; }

    std::size_t memory_bytes() const noexcept;
    void add_stats(CompiledStats& stats) const noexcept;

private:
    friend class TreeBuilder;

    // An inner node sends keys with key[dim] <= value to nodes[child] and
    // the others to nodes[child + 1]. A leaf (dim == leaf_dim) has `value`
    // boxes, starting at box number `child` of leaf_boxes_.
    // link = child << 4 | dim.
    struct Node {
        std::uint32_t value = 0;
        std::uint32_t link = 0;
    };
    static constexpr std::uint32_t leaf_dim = 15;
    // Root tables have at most 2^16 entries (256 KiB).
    static constexpr unsigned max_root_bits = 16;

    void build_root_table(const std::vector<Box>& boxes, const CompiledLimits& limits, int root_dim);
    void lay_out_breadth_first();

    template <unsigned Dims>
    std::uint32_t lookup_fixed(const Key& key, std::uint32_t bound) const noexcept;

    unsigned dims_ = 0;
    unsigned root_dim_ = 0;
    unsigned root_shift_ = 32; // 32: the table has one entry
    std::vector<std::uint32_t> root_table_; // subtree root per top-bits bucket
    std::uint32_t first_rule_ = no_rule;
    std::size_t box_count_ = 0;
    std::vector<Node> nodes_;
    // The boxes of every leaf, copied into each leaf that contains them so
    // that a leaf scan reads consecutive memory, ascending by rule within a
    // leaf. Leaves with the same boxes share one copy. Per box: its rule, then per
    // dimension the low bound and the span (high - low), so that a
    // containment test is one unsigned comparison: key - low <= span.
    std::vector<std::uint32_t> leaf_boxes_;
    std::size_t depth_ = 0;
    std::size_t max_leaf_ = 0;
};

} // namespace compiled_detail

class CompiledClassifier final : public Classifier {
public:
    explicit CompiledClassifier(const RuleTable& table, const CompiledLimits& limits = {});

    Match classify(const PacketView& packet) const noexcept override;
    std::size_t memory_bytes() const noexcept override;
    std::string_view kind() const noexcept override { return "compiled"; }

    CompiledStats stats() const noexcept;

private:
    struct SideRule {
        std::uint32_t index;
        Rule rule;
    };

    // Trees per family, one per partition that has boxes, ordered by their
    // first rule so that a lookup can stop early.
    std::vector<compiled_detail::DecisionTree> ipv4_;
    std::vector<compiled_detail::DecisionTree> ipv6_;
    std::vector<SideRule> side_;     // ordered by index
    std::vector<Action> actions_;    // per rule index
    Action policy_ = Action::accept;
};

} // namespace portwall
