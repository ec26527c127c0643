// JSON reports for `list` and `status`. The client prints them as text or,
// with --json, as they are.
#pragma once

#include "classify/ruleset.hpp"
#include "control/protocol.hpp"

#include <nlohmann/json.hpp>

#include <vector>

namespace portwall::control {

// The rules in force, numbered from 1 in the order they are tried, with their
// origin and, when `counters` is given, their packet and byte counters.
// `cli_rules` are the specs of the first rules of `table`, shown in place of
// the expanded addresses so that "@set" references stay visible.
nlohmann::json rules_report(const RuleTable& table, const std::vector<RuleSpec>& cli_rules,
                            const Ruleset* counters);

// The kernel queue counters of this network namespace, or an "error" key.
nlohmann::json kernel_queues_report();

// Text for people, from the JSON above.
std::string format_rules_report(const nlohmann::json& report);
std::string format_status_report(const nlohmann::json& report);

} // namespace portwall::control
