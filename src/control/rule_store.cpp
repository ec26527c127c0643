#include "control/rule_store.hpp"

#include "rules/syntax.hpp"

#include <set>

namespace portwall::control {

namespace {

// Canonical text of one address term, or nullopt with `error`.
std::optional<std::string> canonical_term(const std::string& text, std::string& error)
{
    const Parsed<AddressTerm> term = parse_address_term(text);
    if (!term.ok()) {
        error = term.error;
        return std::nullopt;
    }
    if (term.value->prefix)
        return format_prefix(*term.value->prefix);
    return "@" + term.value->set_name;
}

bool canonical_terms(std::vector<std::string>& terms, std::string& error)
{
    for (std::string& text : terms) {
        std::optional<std::string> canonical = canonical_term(text, error);
        if (!canonical)
            return false;
        text = std::move(*canonical);
    }
    return true;
}

// Expands `terms` into `out`. A set the file does not define fails with
// `error`, unless `missing_sets` is given: then its name is appended there
// and the term is left out, for listings of a state that no longer builds.
bool resolve_terms(const std::vector<std::string>& terms, const SetMap& sets,
                   std::vector<Prefix>& out, std::string& error,
                   std::vector<std::string>* missing_sets = nullptr)
{
    for (const std::string& text : terms) {
        const Parsed<AddressTerm> term = parse_address_term(text);
        if (!term.ok()) {
            error = term.error;
            return false;
        }
        if (term.value->prefix) {
            out.push_back(*term.value->prefix);
            continue;
        }
        const auto set = sets.find(term.value->set_name);
        if (set == sets.end() && missing_sets != nullptr) {
            missing_sets->push_back("@" + term.value->set_name);
            continue;
        }
        if (set == sets.end()) {
            error = "set @" + term.value->set_name + " is not defined in the rule file";
            return false;
        }
        out.insert(out.end(), set->second.begin(), set->second.end());
    }
    return true;
}

} // namespace

std::optional<RuleSpec> canonical_rule_spec(const RuleSpec& spec, std::string& error)
{
    RuleSpec canonical = spec;
    if (!spec.name.empty()) {
        error = check_name(spec.name);
        if (!error.empty())
            return std::nullopt;
    }
    if (!spec.port.empty()) {
        const Parsed<PortSpec> port = parse_port_spec(spec.port);
        if (!port.ok()) {
            error = port.error;
            return std::nullopt;
        }
        canonical.port = format_port_range(port.value->range);
        if (port.value->protocol) {
            canonical.port += '/';
            canonical.port += protocol_name(*port.value->protocol);
        }
    }
    if (!canonical_terms(canonical.from, error) || !canonical_terms(canonical.to, error))
        return std::nullopt;
    return canonical;
}

namespace {

std::optional<Rule> resolve_rule(const RuleSpec& spec, const SetMap& sets, std::string& error,
                                 std::vector<std::string>* missing_sets)
{
    Rule rule;
    rule.name = spec.name;
    rule.action = spec.action;
    rule.comment = spec.comment;
    rule.origin.kind = RuleOrigin::Kind::cli;
    rule.origin.created_unix = spec.created_unix;

    if (!spec.port.empty()) {
        const Parsed<PortSpec> port = parse_port_spec(spec.port);
        if (!port.ok()) {
            error = port.error;
            return std::nullopt;
        }
        rule.dport.push_back(port.value->range);
        rule.any_protocol = false;
        if (port.value->protocol)
            rule.protocols.set(*port.value->protocol);
        else
            rule.protocols = port_protocols();
    }
    if (!resolve_terms(spec.from, sets, rule.src, error, missing_sets) ||
        !resolve_terms(spec.to, sets, rule.dst, error, missing_sets))
        return std::nullopt;
    return rule;
}

} // namespace

std::optional<Rule> resolve_rule_spec(const RuleSpec& spec, const SetMap& sets, std::string& error)
{
    return resolve_rule(spec, sets, error, nullptr);
}

void RuleStore::set_file(RuleFile file, std::string file_path)
{
    file_ = std::move(file);
    file_path_ = std::move(file_path);
}

std::optional<RuleTable> RuleStore::build(const std::vector<RuleSpec>& cli_rules,
                                          std::string& error) const
{
    std::set<std::string> file_names;
    for (const Rule& rule : file_.table.rules) {
        if (!rule.name.empty())
            file_names.insert(rule.name);
    }

    RuleTable table;
    table.policy = file_.table.policy;
    table.rules.reserve(cli_rules.size() + file_.table.rules.size());

    std::set<std::string> cli_names;
    for (std::size_t i = 0; i < cli_rules.size(); ++i) {
        const RuleSpec& spec = cli_rules[i];
        const std::string where =
            "CLI rule " + std::to_string(i + 1) + " (" + describe_rule_spec(spec) + "): ";
        if (!spec.name.empty() && file_names.count(spec.name) != 0) {
            error = where + "name \"" + spec.name + "\" is also used by a rule in " + file_path_;
            return std::nullopt;
        }
        if (!spec.name.empty() && !cli_names.insert(spec.name).second) {
            error = where + "name \"" + spec.name + "\" is used by an earlier CLI rule";
            return std::nullopt;
        }
        std::optional<Rule> rule = resolve_rule_spec(spec, file_.sets, error);
        if (!rule) {
            error = where + error + "; restore the set in " + file_path_ +
                    " or delete this CLI rule";
            return std::nullopt;
        }
        table.rules.push_back(std::move(*rule));
    }
    table.rules.insert(table.rules.end(), file_.table.rules.begin(), file_.table.rules.end());
    return table;
}

RuleTable RuleStore::build_listing(std::vector<std::string>& problems) const
{
    RuleTable table;
    table.policy = file_.table.policy;
    problems.assign(cli_rules_.size(), std::string());
    for (std::size_t i = 0; i < cli_rules_.size(); ++i) {
        std::vector<std::string> missing;
        std::string error;
        std::optional<Rule> rule = resolve_rule(cli_rules_[i], file_.sets, error, &missing);
        if (!rule) {
            // Saved rules passed canonical_rule_spec at load, so only a set
            // can be missing. The rule stays visible all the same.
            problems[i] = error;
            rule = Rule{};
            rule->action = cli_rules_[i].action;
            rule->origin.kind = RuleOrigin::Kind::cli;
        }
        for (const std::string& set : missing) {
            problems[i] += problems[i].empty() ? "" : "; ";
            problems[i] += "set " + set + " is not defined in the rule file";
        }
        table.rules.push_back(std::move(*rule));
    }
    table.rules.insert(table.rules.end(), file_.table.rules.begin(), file_.table.rules.end());
    return table;
}

} // namespace portwall::control
