// The compiled classifier: theory of operation
// =============================================
//
// Problem. A packet has five fields that rules test: protocol, source port,
// destination port, source address, destination address. A rule is a set of
// conditions, each a list ("any" when empty), and the first rule in table
// order whose conditions all hold decides. The linear reference tests every
// rule in turn. This classifier must return the same rule in time that grows
// slowly with the table, without allocating or locking on lookup.
//
// Choice. Bit-vector schemes (one bitmap of all rules per field value, ANDed
// at lookup, as nft_set_pipapo does) are exact and simple, but every lookup
// table entry is a bitmap of N bits: at 100,000 rules that is 12.5 KB per
// entry, far beyond a budget of 100 bytes per rule. Tuple space search needs
// one hash probe per distinct pair of prefix lengths: the ClassBench acl,
// fw and ipc sets of 10,000 rules have 145, 130 and 298 distinct (source
// length, destination length) pairs. A decision tree answers with a handful of comparisons and
// a short leaf scan, and its memory is what the rules cost when few rules are
// copied into several leaves. This file builds binary trees that cut one
// field at a chosen value per node (the HyperSplit family), and keeps copies
// down by giving rules with a small source, a small destination and neither
// a tree each (the partitioning idea of CutSplit).
//
// Step 1: rules become boxes. Each field is a range of unsigned integers:
//   dim 0 protocol 0..255
//   dim 1, 2 source and destination port 0..65536, where 65536 is the key of
//            a packet whose ports cannot be read. A rule that names no ports
//            covers 0..65536; a rule that names ports covers only its ranges,
//            so it never matches such a packet, exactly as rule_matches().
//   dim 3, 4 first 32-bit word of the source and destination address; IPv6
//            adds words 2..4 as dims 5..10, alternating source, destination.
// A prefix is a box: words it covers whole are one value, the word holding
// its last bit is a range, later words are 0..2^32-1. A protocol set becomes
// runs of consecutive numbers. A rule whose fields hold lists becomes the
// cross product of its list members, one box each, all carrying the rule's
// index; IPv4 and IPv6 get separate boxes and separate trees, and a rule
// whose address lists hold no prefix of a family gets no box there.
//
// Step 2: partitions. A box whose source word 0 spans fewer than 2^16 values
// (a prefix of /16 or longer) goes to partition 0; else one with such a
// destination to partition 1; else partition 2. Within a partition most
// boxes are narrow in one address field, so cuts there copy few boxes.
//
// Step 3: the tree. A node owns a region (a range per dim, initially
// everything) and the boxes that overlap it, in rule order. The builder
//   a) drops every box after the first one that covers the whole region,
//      and in nodes of at most 32 boxes each box that an earlier box covers
//      within the region: neither can ever be the first match there;
//   b) makes a leaf when at most leaf_size boxes remain;
//   c) otherwise tries, in every dim, a cut at t = low - 1 and t = high of
//      each box where t lies inside the region. Boxes with low <= t go left,
//      boxes with high > t go right, so a box across t goes to both. It
//      takes the cut with the lowest 4 * max(left, right) + copies, where
//      copies = left + right - boxes: balance first, memory second.
// Partitions 0 and 1 start with a root table instead of the first cuts: the
// narrow address word is cut into 2^bits equal buckets by its top bits
// (bits = log2 of half the box count, at most 16), a box goes to every
// bucket it overlaps, and each run of adjacent buckets with the same boxes
// gets one subtree built as above. One indexed load replaces about `bits`
// levels of comparisons, and boxes narrower than a bucket are not copied.
// Nodes are stored breadth first, 8 bytes each (value, child << 4 | dim), so
// the two children of a node are adjacent. A leaf stores copies of its boxes
// in rule order.
//
// Step 4: lookup. Build the key on the stack, then visit the family's trees
// in order of their first rule, passing the best rule found so far: a tree
// whose first rule is not below it is skipped, and a leaf scan stops at the
// first box whose rule is not below it. In a tree, the root table entry of
// the key's bucket gives the subtree, the cuts lead to a leaf, and each box
// of the leaf is tested dim by dim, addresses first because they reject
// most boxes, as key - low <= high - low in unsigned arithmetic. Last, the
// side table (below) is scanned for rules before the best.
//
// Worked example, IPv4, leaf_size 2 (the default is 16):
//   R0  accept  proto tcp  dport 22     src 198.18.1.0/24
//   R1  drop               dport 80-89  dst 0.0.0.0/0
//   R2  accept                          src 198.18.0.0/15
// R1 names ports without a protocol, which means tcp, udp, udplite and sctp.
// Its dst keeps it IPv4 only (an empty list would add IPv6 boxes as well).
// Boxes (proto; sport; dport; src word; dst word), addresses in hex:
//   b0 R0  6;        0..65535; 22;       c6120100..c61201ff; any
//   b1 R1  6;        0..65535; 80..89;   any;                any
//   b2 R1  17;       same as b1
//   b3 R1  132;      same as b1
//   b4 R1  136;      same as b1
//   b5 R2  0..255;   0..65536; 0..65536; c6120000..c613ffff; any
// Partitions: b0 has a /24 source, so partition 0 = {b0}, a single leaf
// (one box is too few for a root table).
// b1..b5 have wide sources and destinations: partition 2. Its root region is
// everything and no box covers it. Candidate cuts, among others:
//   proto <= 6:     left {b1, b5},     right {b2, b3, b4, b5}  cost 4*4+1 = 17
//   proto <= 17:    left {b1, b2, b5}, right {b3, b4, b5}      cost 4*3+1 = 13
//   dport <= 65536: left all five,     right {b5}              cost 4*5+1 = 21
// The first cut of lowest cost wins, proto <= 17. The left child (proto
// 0..17, three boxes) is cut again at proto <= 6, the right child (proto
// 18..255) at proto <= 132, each side with cost 4*2+1 = 9:
//
//   partition 0: leaf [b0]
//   partition 2: proto <= 17?
//                +-- yes: proto <= 6?
//                |        +-- yes: leaf [b1, b5]
//                |        +-- no:  leaf [b2, b5]
//                +-- no:  proto <= 132?
//                         +-- yes: leaf [b3, b5]
//                         +-- no:  leaf [b4, b5]
//
// That is 8 nodes and 9 boxes in leaves; b5 is copied into four leaves.
// Lookups, trees visited in order of first rule (partition 0 from R0, then
// partition 2 from R1):
//   tcp 198.18.1.7:40000 -> 198.19.0.1:22. Key (6, 40000, 22, c6120107,
//     c6130001). Partition 0: b0 contains it, best = R0. Partition 2 starts
//     at R1 >= R0, so it is skipped. Result R0.
//   udp 198.18.5.5:53 -> 198.19.0.1:85. Partition 0: b0 fails on protocol.
//     Partition 2: 17 <= 17 goes left, 17 > 6 goes right, leaf [b2, b5]:
//     b2 contains the key (85 is in 80..89). Result R1.
//   icmp 198.18.5.5 -> 198.19.0.1. No ports, so both port keys are 65536.
//     Partition 0: b0 fails. Partition 2: 1 <= 17, 1 <= 6, leaf [b1, b5]:
//     b1 fails on protocol, b5 contains the key (65536 is in 0..65536).
//     Result R2.
// The unit test "compiled: theory worked example" checks these.
//
// Side table. A rule stays out of the trees, and is tested with
// rule_matches() after them, when one family would need more than
// max_boxes_per_rule boxes (256 by default), or when it contains a prefix
// longer than its family, a prefix with host bits set or a port range with
// low > high. The rules compiler rejects the last three, so only long lists
// end up here; the scan stops at the first side rule not before the best.
//
// Limits, enforced: leaf_size (16) boxes per leaf unless max_depth (48) stops
// the split first or no cut separates the boxes; at most 2^28 - 1 nodes,
// boxes in leaves and boxes per tree (std::length_error at compile); rule
// indexes below 2^32 - 1.
// Memory: per box copy in a leaf 4 + 8 * dims bytes (44 for IPv4, 92 for
// IPv6), per node 8, per root table entry 4, plus the side rules' copies.
// Leaves hold copies of their boxes, not ids, so that a leaf scan reads
// consecutive memory; leaves with the same boxes share one copy.
// Concurrency: lookup reads only immutable data and a key on its stack, so
// any number of threads may share one classifier.
// Changes: there is no incremental insert or delete. A change compiles the
// whole table again; docs/performance.md gives the measured compile times.
//
// NOTE: partitioning limits copies on ClassBench-like tables but bounds
// nothing: many overlapping wide ranges in one partition still copy boxes
// into many leaves, and memory and compile time then grow faster than the
// rule count.
#include "classify/compiled.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace portwall {

namespace compiled_detail {

namespace {

constexpr unsigned ipv4_dims = 5;
constexpr unsigned ipv6_dims = max_dims;
constexpr unsigned dim_protocol = 0;
constexpr unsigned dim_sport = 1;
constexpr unsigned dim_dport = 2;
constexpr unsigned dim_src = 3; // then dst at 4, src word 1 at 5, dst word 1 at 6, ...
constexpr std::uint32_t no_ports = 65536;
constexpr std::uint32_t max_encoded_index = (1u << 28) - 1;

// Boxes compared pairwise for coverage only in nodes this small, because the
// test is quadratic.
constexpr std::size_t pairwise_prune_limit = 32;

struct Region {
    std::array<std::uint32_t, max_dims> low{};
    std::array<std::uint32_t, max_dims> high{};
};

struct Split {
    bool found = false;
    unsigned dim = 0;
    std::uint32_t value = 0;
    std::size_t left = 0;
    std::size_t right = 0;
    std::uint64_t cost = UINT64_MAX;
};

} // namespace

// Builds the nodes of a DecisionTree depth first; see the theory of operation.
class TreeBuilder {
public:
    TreeBuilder(DecisionTree& tree, const std::vector<Box>& boxes, const CompiledLimits& limits)
        : tree_(tree), boxes_(boxes), limits_(limits)
    {
    }

    void build(std::uint32_t node, const Region& region, std::vector<std::uint32_t>& ids,
               unsigned depth);

private:
    bool covers(const Box& box, const Region& region) const noexcept;
    bool covers_within(const Box& outer, const Box& inner, const Region& region) const noexcept;
    void prune(const Region& region, std::vector<std::uint32_t>& ids) const;
    Split choose_split(const Region& region, const std::vector<std::uint32_t>& ids) const;
    void consider_dim(unsigned dim, const Region& region, const std::vector<std::uint32_t>& ids,
                      Split& best) const;
    void make_leaf(std::uint32_t node, const std::vector<std::uint32_t>& ids, unsigned depth);

    DecisionTree& tree_;
    const std::vector<Box>& boxes_;
    const CompiledLimits& limits_;
    // Start of each distinct leaf's boxes in leaf_boxes_, counted in boxes.
    std::map<std::vector<std::uint32_t>, std::size_t> leaf_offsets_;
};

bool TreeBuilder::covers(const Box& box, const Region& region) const noexcept
{
    for (unsigned d = 0; d < tree_.dims_; ++d) {
        if (box.low[d] > region.low[d] || box.high[d] < region.high[d])
            return false;
    }
    return true;
}

bool TreeBuilder::covers_within(const Box& outer, const Box& inner, const Region& region) const noexcept
{
    for (unsigned d = 0; d < tree_.dims_; ++d) {
        const std::uint32_t outer_low = std::max(outer.low[d], region.low[d]);
        const std::uint32_t outer_high = std::min(outer.high[d], region.high[d]);
        const std::uint32_t inner_low = std::max(inner.low[d], region.low[d]);
        const std::uint32_t inner_high = std::min(inner.high[d], region.high[d]);
        if (outer_low > inner_low || outer_high < inner_high)
            return false;
    }
    return true;
}

// Drop boxes that can never decide inside `region`: everything after the
// first box that covers the whole region, and in small nodes every box that
// an earlier box covers within the region.
void TreeBuilder::prune(const Region& region, std::vector<std::uint32_t>& ids) const
{
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (covers(boxes_[ids[i]], region)) {
            ids.resize(i + 1);
            break;
        }
    }
    if (ids.size() > pairwise_prune_limit)
        return;

    std::size_t kept = 0;
    for (std::size_t j = 0; j < ids.size(); ++j) {
        bool shadowed = false;
        for (std::size_t i = 0; i < kept && !shadowed; ++i)
            shadowed = covers_within(boxes_[ids[i]], boxes_[ids[j]], region);
        if (!shadowed)
            ids[kept++] = ids[j];
    }
    ids.resize(kept);
}

// Evaluate every cut of dimension `dim` at a box edge strictly inside the
// region. A cut at t sends boxes with low <= t left and boxes with high > t
// right, so a box straddling t is copied to both children.
void TreeBuilder::consider_dim(unsigned dim, const Region& region,
                               const std::vector<std::uint32_t>& ids, Split& best) const
{
    std::vector<std::uint32_t> lows;
    std::vector<std::uint32_t> highs;
    std::vector<std::uint32_t> cuts;
    lows.reserve(ids.size());
    highs.reserve(ids.size());
    cuts.reserve(ids.size() * 2);
    for (std::uint32_t id : ids) {
        const std::uint32_t low = std::max(boxes_[id].low[dim], region.low[dim]);
        const std::uint32_t high = std::min(boxes_[id].high[dim], region.high[dim]);
        lows.push_back(low);
        highs.push_back(high);
        if (low > region.low[dim])
            cuts.push_back(low - 1);
        if (high < region.high[dim])
            cuts.push_back(high);
    }
    if (cuts.empty())
        return;
    std::sort(lows.begin(), lows.end());
    std::sort(highs.begin(), highs.end());
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());

    const std::size_t count = ids.size();
    std::size_t lows_at_or_below = 0;
    std::size_t highs_at_or_below = 0;
    for (std::uint32_t cut : cuts) {
        while (lows_at_or_below < count && lows[lows_at_or_below] <= cut)
            ++lows_at_or_below;
        while (highs_at_or_below < count && highs[highs_at_or_below] <= cut)
            ++highs_at_or_below;
        const std::size_t left = lows_at_or_below;
        const std::size_t right = count - highs_at_or_below;
        // Balance first, then copies: the larger child bounds the depth, and
        // the copies (left + right - count) cost memory.
        const std::uint64_t cost =
            static_cast<std::uint64_t>(std::max(left, right)) * 4 + (left + right - count);
        if (cost < best.cost)
            best = Split{true, dim, cut, left, right, cost};
    }
}

Split TreeBuilder::choose_split(const Region& region, const std::vector<std::uint32_t>& ids) const
{
    Split best;
    for (unsigned d = 0; d < tree_.dims_; ++d)
        consider_dim(d, region, ids, best);
    return best;
}

void TreeBuilder::make_leaf(std::uint32_t node, const std::vector<std::uint32_t>& ids, unsigned depth)
{
    const unsigned dims = tree_.dims_;
    const std::size_t offset = tree_.leaf_boxes_.size() / (1 + 2 * dims);
    const auto [shared, added] = leaf_offsets_.try_emplace(ids, offset);
    tree_.nodes_[node].value = static_cast<std::uint32_t>(ids.size());
    tree_.nodes_[node].link = static_cast<std::uint32_t>(shared->second << 4) | DecisionTree::leaf_dim;
    tree_.depth_ = std::max<std::size_t>(tree_.depth_, depth);
    tree_.max_leaf_ = std::max(tree_.max_leaf_, ids.size());
    if (!added)
        return;
    if (offset + ids.size() > max_encoded_index)
        throw std::length_error("compiled classifier: more than 2^28 boxes in leaves");
    for (std::uint32_t id : ids) {
        const Box& box = boxes_[id];
        tree_.leaf_boxes_.push_back(box.rule);
        for (unsigned d = 0; d < dims; ++d) {
            tree_.leaf_boxes_.push_back(box.low[d]);
            tree_.leaf_boxes_.push_back(box.high[d] - box.low[d]);
        }
    }
}

void TreeBuilder::build(std::uint32_t node, const Region& region, std::vector<std::uint32_t>& ids,
                        unsigned depth)
{
    prune(region, ids);
    if (ids.size() <= limits_.leaf_size || depth >= limits_.max_depth) {
        make_leaf(node, ids, depth);
        return;
    }
    const Split split = choose_split(region, ids);
    // A cut that copies every box to both sides would only deepen the tree.
    if (!split.found || (split.left == ids.size() && split.right == ids.size())) {
        make_leaf(node, ids, depth);
        return;
    }

    std::vector<std::uint32_t> left;
    std::vector<std::uint32_t> right;
    left.reserve(split.left);
    right.reserve(split.right);
    for (std::uint32_t id : ids) {
        const Box& box = boxes_[id];
        if (std::max(box.low[split.dim], region.low[split.dim]) <= split.value)
            left.push_back(id);
        if (std::min(box.high[split.dim], region.high[split.dim]) > split.value)
            right.push_back(id);
    }
    std::vector<std::uint32_t>().swap(ids); // free the parent's list before recursing

    const std::size_t child = tree_.nodes_.size();
    if (child + 2 > max_encoded_index)
        throw std::length_error("compiled classifier: more than 2^28 tree nodes");
    tree_.nodes_.resize(child + 2);
    tree_.nodes_[node].value = split.value;
    tree_.nodes_[node].link = static_cast<std::uint32_t>(child << 4) | split.dim;

    Region left_region = region;
    left_region.high[split.dim] = split.value;
    Region right_region = region;
    right_region.low[split.dim] = split.value + 1;
    build(static_cast<std::uint32_t>(child), left_region, left, depth + 1);
    build(static_cast<std::uint32_t>(child + 1), right_region, right, depth + 1);
}

void DecisionTree::build(unsigned dims, const std::vector<Box>& boxes, const CompiledLimits& limits,
                         int root_dim)
{
    if (boxes.size() > max_encoded_index)
        throw std::length_error("compiled classifier: more than 2^28 boxes");
    dims_ = dims;
    first_rule_ = boxes.empty() ? no_rule : boxes.front().rule;
    box_count_ = boxes.size();
    nodes_.clear();
    leaf_boxes_.clear();
    depth_ = 0;
    max_leaf_ = 0;

    build_root_table(boxes, limits, root_dim);
    lay_out_breadth_first();
    leaf_boxes_.shrink_to_fit();
}

// Cut `root_dim` into 2^bits equal buckets by its top bits, one lookup
// table entry each, and build a subtree per run of adjacent buckets that
// overlap the same boxes. This replaces the top `bits` levels of binary
// cuts with one indexed load. Without a root dim the table has one entry.
void DecisionTree::build_root_table(const std::vector<Box>& boxes, const CompiledLimits& limits, int root_dim)
{
    unsigned bits = 0;
    if (root_dim >= 0) {
        while (bits < max_root_bits && (std::size_t{2} << bits) <= boxes.size() / 2)
            ++bits;
    }
    root_dim_ = root_dim >= 0 ? static_cast<unsigned>(root_dim) : 0;
    root_shift_ = 32 - bits;

    const std::size_t buckets = std::size_t{1} << bits;
    std::vector<std::vector<std::uint32_t>> bucket_ids(buckets);
    for (std::uint32_t id = 0; id < boxes.size(); ++id) {
        const std::uint64_t first = bits == 0 ? 0 : boxes[id].low[root_dim_] >> root_shift_;
        const std::uint64_t last = bits == 0 ? 0 : boxes[id].high[root_dim_] >> root_shift_;
        for (std::uint64_t bucket = first; bucket <= last; ++bucket)
            bucket_ids[bucket].push_back(id);
    }

    TreeBuilder builder(*this, boxes, limits);
    root_table_.assign(buckets, 0);
    for (std::size_t first = 0; first < buckets;) {
        std::size_t last = first;
        while (last + 1 < buckets && bucket_ids[last + 1] == bucket_ids[first])
            ++last;
        Region region;
        region.high.fill(UINT32_MAX);
        if (bits > 0) {
            region.low[root_dim_] = static_cast<std::uint32_t>(first << root_shift_);
            region.high[root_dim_] = static_cast<std::uint32_t>(((last + 1) << root_shift_) - 1);
        }
        const std::size_t root = nodes_.size();
        if (root + 1 > max_encoded_index)
            throw std::length_error("compiled classifier: more than 2^28 tree nodes");
        nodes_.emplace_back();
        std::vector<std::uint32_t> ids = std::move(bucket_ids[first]);
        builder.build(static_cast<std::uint32_t>(root), region, ids, bits > 0 ? 1 : 0);
        std::fill(root_table_.begin() + static_cast<std::ptrdiff_t>(first),
                  root_table_.begin() + static_cast<std::ptrdiff_t>(last + 1), static_cast<std::uint32_t>(root));
        first = last + 1;
    }
}

// Renumber the nodes in breadth-first order. Siblings stay adjacent, and the
// top levels, which every lookup reads, share a few cache lines instead of
// being spread over the array by the depth-first build.
void DecisionTree::lay_out_breadth_first()
{
    std::vector<Node> ordered;
    ordered.reserve(nodes_.size());
    // Subtree roots first, in table order; each bucket keeps pointing at its
    // root's new place.
    std::vector<std::uint32_t> new_root(nodes_.size(), UINT32_MAX);
    for (std::uint32_t& root : root_table_) {
        if (new_root[root] == UINT32_MAX) {
            new_root[root] = static_cast<std::uint32_t>(ordered.size());
            ordered.push_back(nodes_[root]);
        }
        root = new_root[root];
    }
    for (std::size_t next = 0; next < ordered.size(); ++next) {
        Node& node = ordered[next];
        const std::uint32_t dim = node.link & 15;
        if (dim == leaf_dim)
            continue;
        const std::uint32_t old_child = node.link >> 4;
        node.link = static_cast<std::uint32_t>(ordered.size() << 4) | dim;
        ordered.push_back(nodes_[old_child]);
        ordered.push_back(nodes_[old_child + 1]);
    }
    nodes_ = std::move(ordered);
}

template <unsigned Dims>
[[gnu::always_inline]] inline std::uint32_t DecisionTree::lookup_fixed(const Key& key,
                                                                       std::uint32_t bound) const noexcept
{
    const Node* nodes = nodes_.data();
    Node node = nodes[root_table_[static_cast<std::uint64_t>(key[root_dim_]) >> root_shift_]];
    while ((node.link & 15) != leaf_dim) {
        const std::uint32_t child = (node.link >> 4) + (key[node.link & 15] > node.value ? 1 : 0);
        node = nodes[child];
    }

    constexpr unsigned stride = 1 + 2 * Dims;
    const std::uint32_t* box = leaf_boxes_.data() + static_cast<std::size_t>(node.link >> 4) * stride;
    const std::uint32_t* end = box + static_cast<std::size_t>(node.value) * stride;
    for (; box != end; box += stride) {
        // Leaf entries ascend by rule, so nothing after this one can win.
        if (box[0] >= bound)
            break;
        // Addresses first: they reject most boxes, so most tests end after
        // one or two dims.
        unsigned d = Dims;
        while (d > 0 && key[d - 1] - box[2 * d - 1] <= box[2 * d])
            --d;
        if (d == 0)
            return box[0];
    }
    return bound;
}

std::uint32_t DecisionTree::lookup(const Key& key, std::uint32_t bound) const noexcept
{
    if (first_rule_ >= bound)
        return bound;
    return dims_ == ipv4_dims ? lookup_fixed<ipv4_dims>(key, bound) : lookup_fixed<ipv6_dims>(key, bound);
}

std::size_t DecisionTree::memory_bytes() const noexcept
{
    return nodes_.capacity() * sizeof(Node) +
           (root_table_.capacity() + leaf_boxes_.capacity()) * sizeof(std::uint32_t);
}

void DecisionTree::add_stats(CompiledStats& stats) const noexcept
{
    stats.trees += 1;
    stats.boxes += box_count_;
    stats.nodes += nodes_.size();
    stats.leaf_entries += dims_ == 0 ? 0 : leaf_boxes_.size() / (1 + 2 * dims_);
    stats.max_leaf = std::max(stats.max_leaf, max_leaf_);
    stats.depth = std::max(stats.depth, depth_);
}

} // namespace compiled_detail

namespace {

using compiled_detail::Box;
using compiled_detail::Key;
using compiled_detail::ipv4_dims;
using compiled_detail::ipv6_dims;
using compiled_detail::dim_protocol;
using compiled_detail::dim_sport;
using compiled_detail::dim_dport;
using compiled_detail::dim_src;
using compiled_detail::no_ports;

struct Interval {
    std::uint32_t low;
    std::uint32_t high;
};

// One rule's conditions for one family as lists of intervals per field; the
// rule is the union of their cross product. An address field has one
// entry per prefix, each entry a range per 32-bit word.
struct Expansion {
    std::vector<Interval> protocols;
    std::vector<Interval> sport;
    std::vector<Interval> dport;
    std::vector<std::array<Interval, 4>> src;
    std::vector<std::array<Interval, 4>> dst;
};

enum class ExpandResult { boxes, never_matches, side_table };

std::vector<Interval> protocol_runs(const Rule& rule)
{
    if (rule.any_protocol)
        return {{0, 255}};
    std::vector<Interval> runs;
    for (std::uint32_t p = 0; p < 256; ++p) {
        if (!rule.protocols.test(p))
            continue;
        if (!runs.empty() && runs.back().high + 1 == p)
            runs.back().high = p;
        else
            runs.push_back({p, p});
    }
    return runs;
}

// Port ranges of one field. A rule without ports also accepts packets
// without readable ports (key 65536); a rule with ports never does.
bool port_intervals(const Rule& rule, const std::vector<PortRange>& ranges,
                    std::vector<Interval>& out)
{
    if (!rule.names_ports()) {
        out.push_back({0, no_ports});
        return true;
    }
    if (ranges.empty()) {
        out.push_back({0, 65535});
        return true;
    }
    for (const PortRange& range : ranges) {
        if (range.low > range.high)
            return false; // cannot match; the side table keeps the exact meaning
        out.push_back({range.low, range.high});
    }
    return true;
}

std::uint32_t address_word(const Address& address, unsigned word)
{
    return static_cast<std::uint32_t>(address.bytes[4 * word]) << 24 |
           static_cast<std::uint32_t>(address.bytes[4 * word + 1]) << 16 |
           static_cast<std::uint32_t>(address.bytes[4 * word + 2]) << 8 |
           static_cast<std::uint32_t>(address.bytes[4 * word + 3]);
}

// The word ranges of the prefixes of `family` in `prefixes`. Returns false
// for a prefix with a length beyond its family or with host bits set: the
// rules compiler rejects both, and Prefix::contains gives them a meaning of
// its own that the side table keeps.
bool prefix_intervals(const std::vector<Prefix>& prefixes, Family family,
                      std::vector<std::array<Interval, 4>>& out)
{
    const unsigned words = family == Family::ipv4 ? 1 : 4;
    for (const Prefix& prefix : prefixes) {
        if (prefix.address.family != family)
            continue;
        if (prefix.length > words * 32)
            return false;
        std::array<Interval, 4> ranges{};
        bool host_bits = false;
        for (unsigned w = 0; w < 4; ++w) {
            const int bits = std::clamp(static_cast<int>(prefix.length) - 32 * static_cast<int>(w), 0, 32);
            const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
            const std::uint32_t value = address_word(prefix.address, w);
            host_bits |= (value & ~mask) != 0;
            ranges[w] = {value & mask, (value & mask) | ~mask};
        }
        if (host_bits)
            return false;
        out.push_back(ranges);
    }
    return true;
}

ExpandResult expand(const Rule& rule, Family family, const CompiledLimits& limits, Expansion& out)
{
    out.protocols = protocol_runs(rule);
    if (!port_intervals(rule, rule.sport, out.sport) || !port_intervals(rule, rule.dport, out.dport))
        return ExpandResult::side_table;

    const std::array<Interval, 4> any_address{{{0, UINT32_MAX}, {0, UINT32_MAX}, {0, UINT32_MAX}, {0, UINT32_MAX}}};
    for (auto [prefixes, field] : {std::pair{&rule.src, &out.src}, std::pair{&rule.dst, &out.dst}}) {
        if (prefixes->empty())
            field->push_back(any_address);
        else if (!prefix_intervals(*prefixes, family, *field))
            return ExpandResult::side_table;
    }

    std::uint64_t count = 1;
    for (std::size_t size : {out.protocols.size(), out.sport.size(), out.dport.size(), out.src.size(), out.dst.size()})
        count *= size;
    if (count == 0)
        return ExpandResult::never_matches;
    if (count > limits.max_boxes_per_rule)
        return ExpandResult::side_table;
    return ExpandResult::boxes;
}

void append_boxes(const Expansion& expansion, std::uint32_t rule, unsigned words, std::vector<Box>& boxes)
{
    Box box;
    box.rule = rule;
    for (const Interval& protocol : expansion.protocols)
        for (const Interval& sport : expansion.sport)
            for (const Interval& dport : expansion.dport)
                for (const auto& src : expansion.src)
                    for (const auto& dst : expansion.dst) {
                        box.low[dim_protocol] = protocol.low;
                        box.high[dim_protocol] = protocol.high;
                        box.low[dim_sport] = sport.low;
                        box.high[dim_sport] = sport.high;
                        box.low[dim_dport] = dport.low;
                        box.high[dim_dport] = dport.high;
                        for (unsigned w = 0; w < words; ++w) {
                            box.low[dim_src + 2 * w] = src[w].low;
                            box.high[dim_src + 2 * w] = src[w].high;
                            box.low[dim_src + 2 * w + 1] = dst[w].low;
                            box.high[dim_src + 2 * w + 1] = dst[w].high;
                        }
                        boxes.push_back(box);
                    }
}

// Partition of a box: 0 when its source address is small (the first word
// spans fewer than 2^16 values), else 1 when its destination is small, else
// 2. Inside a partition, cuts on the small field copy few boxes.
unsigned partition_of(const Box& box)
{
    constexpr std::uint32_t small_span = 1u << 16;
    if (box.high[dim_src] - box.low[dim_src] < small_span)
        return 0;
    if (box.high[dim_src + 1] - box.low[dim_src + 1] < small_span)
        return 1;
    return 2;
}

void build_partitions(unsigned dims, const std::vector<Box>& boxes, const CompiledLimits& limits,
                      std::vector<compiled_detail::DecisionTree>& trees)
{
    std::array<std::vector<Box>, 3> partitions;
    for (const Box& box : boxes)
        partitions[partition_of(box)].push_back(box);
    // Partitions 0 and 1 are narrow in the source or destination address,
    // so a root table on that field copies few boxes.
    constexpr int root_dims[] = {dim_src, dim_src + 1, -1};
    for (std::size_t p = 0; p < partitions.size(); ++p) {
        if (partitions[p].empty())
            continue;
        trees.emplace_back().build(dims, partitions[p], limits, root_dims[p]);
    }
    std::sort(trees.begin(), trees.end(), [](const auto& a, const auto& b) { return a.first_rule() < b.first_rule(); });
}

Key make_key(const PacketView& packet) noexcept
{
    // Words past the family's dims stay unset: IPv4 trees never read them.
    Key key;
    key[dim_protocol] = packet.protocol;
    key[dim_sport] = packet.has_ports() ? packet.sport : no_ports;
    key[dim_dport] = packet.has_ports() ? packet.dport : no_ports;
    const unsigned words = packet.family == Family::ipv4 ? 1 : 4;
    for (unsigned w = 0; w < words; ++w) {
        key[dim_src + 2 * w] = address_word(packet.src, w);
        key[dim_src + 2 * w + 1] = address_word(packet.dst, w);
    }
    return key;
}

} // namespace

CompiledClassifier::CompiledClassifier(const RuleTable& table, const CompiledLimits& limits)
    : policy_(table.policy)
{
    if (table.rules.size() >= compiled_detail::no_rule)
        throw std::length_error("compiled classifier: too many rules");

    std::vector<Box> ipv4_boxes;
    std::vector<Box> ipv6_boxes;
    actions_.reserve(table.rules.size());
    for (std::uint32_t i = 0; i < table.rules.size(); ++i) {
        const Rule& rule = table.rules[i];
        actions_.push_back(rule.action);

        Expansion ipv4;
        Expansion ipv6;
        const ExpandResult ipv4_result = expand(rule, Family::ipv4, limits, ipv4);
        const ExpandResult ipv6_result = expand(rule, Family::ipv6, limits, ipv6);
        if (ipv4_result == ExpandResult::side_table || ipv6_result == ExpandResult::side_table) {
            side_.push_back(SideRule{i, rule});
            continue;
        }
        if (ipv4_result == ExpandResult::boxes)
            append_boxes(ipv4, i, 1, ipv4_boxes);
        if (ipv6_result == ExpandResult::boxes)
            append_boxes(ipv6, i, 4, ipv6_boxes);
    }
    build_partitions(ipv4_dims, ipv4_boxes, limits, ipv4_);
    build_partitions(ipv6_dims, ipv6_boxes, limits, ipv6_);
}

Match CompiledClassifier::classify(const PacketView& packet) const noexcept
{
    if (!packet.ok())
        return Match{Match::policy, policy_};

    const Key key = make_key(packet);
    std::uint32_t best = compiled_detail::no_rule;
    for (const compiled_detail::DecisionTree& tree : packet.family == Family::ipv4 ? ipv4_ : ipv6_)
        best = tree.lookup(key, best);
    for (const SideRule& side : side_) {
        if (side.index >= best)
            break;
        if (rule_matches(side.rule, packet)) {
            best = side.index;
            break;
        }
    }
    if (best == compiled_detail::no_rule)
        return Match{Match::policy, policy_};
    return Match{best, actions_[best]};
}

std::size_t CompiledClassifier::memory_bytes() const noexcept
{
    std::size_t bytes = sizeof(*this);
    for (const auto* trees : {&ipv4_, &ipv6_}) {
        bytes += trees->capacity() * sizeof(compiled_detail::DecisionTree);
        for (const compiled_detail::DecisionTree& tree : *trees)
            bytes += tree.memory_bytes();
    }
    bytes += actions_.capacity() * sizeof(Action) + side_.capacity() * sizeof(SideRule);
    for (const SideRule& side : side_) {
        bytes += (side.rule.sport.capacity() + side.rule.dport.capacity()) * sizeof(PortRange);
        bytes += (side.rule.src.capacity() + side.rule.dst.capacity()) * sizeof(Prefix);
    }
    return bytes;
}

CompiledStats CompiledClassifier::stats() const noexcept
{
    CompiledStats stats;
    for (const auto* trees : {&ipv4_, &ipv6_}) {
        for (const compiled_detail::DecisionTree& tree : *trees)
            tree.add_stats(stats);
    }
    stats.side_rules = side_.size();
    return stats;
}

} // namespace portwall
