// The rules in force: the rule file's rules and the rules added from the
// command line, merged into one RuleTable.
//
// Order: CLI rules come first, in their own order, then the file's rules;
// the file's policy applies to packets that match neither. So a `block`
// from the CLI wins over an `allow` in the file, which is what an admin who
// blocks a port during an incident expects. `insert POSITION` places a CLI
// rule at POSITION among the CLI rules (1 = tried first); file rules can
// only be changed by editing the file.
#pragma once

#include "classify/rule.hpp"
#include "control/protocol.hpp"
#include "rules/compiler.hpp"

#include <map>
#include <string>
#include <vector>

namespace portwall::control {

// The rule file's named sets, by name without the '@' (RuleFile::sets).
using SetMap = std::map<std::string, std::vector<Prefix>>;

// Check a CLI rule's text with the rule file's parsers and return it in
// canonical form ("3306/tcp", "198.18.0.0/24", host prefixes without a
// length), so that equal rules compare equal. On failure returns nullopt and
// sets `error` naming the value.
std::optional<RuleSpec> canonical_rule_spec(const RuleSpec& spec, std::string& error);

// Turn a CLI rule into a Rule. A port without a protocol means the
// port-carrying protocols; no port means any protocol. Set references are
// expanded from `sets`. On failure returns nullopt and sets `error`.
std::optional<Rule> resolve_rule_spec(const RuleSpec& spec, const SetMap& sets, std::string& error);

class RuleStore {
public:
    // Replace the rule file's part, keeping the CLI rules. CLI rules take
    // their "@set" references from the file's sets.
    void set_file(RuleFile file, std::string file_path);
    void set_cli_rules(std::vector<RuleSpec> rules) { cli_rules_ = std::move(rules); }

    const RuleFile& file() const noexcept { return file_; }
    const std::string& file_path() const noexcept { return file_path_; }
    const std::vector<RuleSpec>& cli_rules() const noexcept { return cli_rules_; }

    // Build the merged table from the current parts, or from `cli_rules`
    // in place of the stored CLI rules. Fails, naming the CLI rule, when a
    // CLI rule refers to a set the file no longer defines or reuses a name.
    std::optional<RuleTable> build(std::string& error) const { return build(cli_rules_, error); }
    std::optional<RuleTable> build(const std::vector<RuleSpec>& cli_rules,
                                   std::string& error) const;

    // Build the merged table for a listing even when CLI rules refer to sets
    // the file no longer defines. Such a reference is left out of the rule,
    // and `problems[i]` names what CLI rule i lacks ("" when nothing). The
    // table is for display only, because a rule without its set matches more.
    RuleTable build_listing(std::vector<std::string>& problems) const;

private:
    RuleFile file_;
    std::string file_path_;
    std::vector<RuleSpec> cli_rules_;
};

} // namespace portwall::control
