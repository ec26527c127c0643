// Rules that can never match because one earlier rule matches every packet
// they would match.
#pragma once

#include "classify/rule.hpp"
#include "rules/compiler.hpp"

#include <vector>

namespace portwall {

// Return one warning per rule that an earlier rule covers on every dimension
// (protocol, ports, source, destination), naming the first such rule and
// telling an exact duplicate apart from a broader rule. Positions come from
// the rules' origins.
//
// NOTE: coverage is checked against one earlier rule at a time, and a prefix
// or port range counts as covered only when one member of the earlier rule's
// list contains it (touching port ranges are merged first). A rule covered
// only by the union of several rules, or of two prefixes, is not reported.
std::vector<Diagnostic> find_covered_rules(const RuleTable& table);

// Return one warning per rule that promises something about a TCP port in
// [daemon] admin_ports that does not hold when failing closed: the kernel
// accepts those ports from every address before the queue, so a src, dst or
// sport condition on them, or a drop of them, never decides anything. Files
// that set fail = "open" get no warning (their admin ports are not installed).
std::vector<Diagnostic> find_admin_port_bypasses(const RuleFile& file);

} // namespace portwall
