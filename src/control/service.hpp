// The control service: applies control requests to the rules in force.
//
// It owns the RuleStore (file rules and CLI rules), publishes every change
// as a new Ruleset through the RulesetHolder, and keeps the state file in
// step. The daemon uses it behind the control socket; `--offline` edits use
// it with no holder, to change only the state file.
//
// A change is applied in this order: edit a copy of the CLI rules, build and
// check the merged table, compile the new Ruleset, write the state file, and
// publish the Ruleset with one pointer swap. So a failure at any step leaves
// the old rules and the old state file in force.
#pragma once

#include "classify/ruleset.hpp"
#include "control/protocol.hpp"
#include "control/rule_store.hpp"
#include "control/state_file.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

namespace portwall::control {

// Maximum number of CLI rules after a change that adds one. Every change
// copies, rebuilds and recompiles the whole table and rewrites the state
// file, so its cost grows with the CLI rule count. The bound is a round
// number, not a measured one. Rules in bulk belong in the rule file.
inline constexpr std::size_t max_cli_rules = 10000;

struct ServiceHooks {
    // Daemon-wide counters and settings for `status` (packets accepted,
    // dropped, malformed, fail mode, queue mode), as a JSON object.
    std::function<nlohmann::json()> daemon_status;
    // Runs after a Ruleset is published, e.g. to delete conntrack entries of
    // connections the new rules drop. Returns a note for the reply, or "".
    std::function<std::string(const Ruleset&)> after_publish;
};

class ControlService {
public:
    using Clock = std::chrono::steady_clock;

    // `holder` may be null: then changes only go to the state file.
    ControlService(RulesetHolder* holder, std::string state_dir, ClassifierKind kind);

    void set_hooks(ServiceHooks hooks);

    // Load the rule file and then the state, and publish the merged rules.
    // Fails and changes nothing when the state has errors or a CLI rule no
    // longer fits the file (an undefined set, a name used twice). The
    // `error` then names the state file's line.
    bool start(RuleFile file, const std::string& file_path, const StateLoad& state,
               std::string& error);

    // Load the rules for an `--offline` edit. Unlike start(), a CLI rule that
    // names a set the file no longer defines is accepted, so that `delete`,
    // `unblock` and `list` can repair a state that stops the daemon. Adding
    // rules still needs every rule to build. Needs a service with no holder.
    bool start_offline(RuleFile file, const std::string& file_path, const StateLoad& state,
                       std::string& error);

    // Replace the rule file's rules (SIGHUP), keeping the CLI rules. On
    // failure the old rules stay in force.
    bool reload_file(RuleFile file, const std::string& file_path, std::string& error);

    Reply handle(const Request& request);

    // When a `--confirm` change rolls back unless confirmed before then.
    std::optional<Clock::time_point> confirm_deadline() const;

    // Roll back the unconfirmed change if its deadline has passed.
    void expire_confirm(Clock::time_point now);

    std::size_t cli_rule_count() const;

private:
    struct PendingConfirm {
        std::vector<RuleSpec> previous; // CLI rules to restore on timeout
        Clock::time_point deadline;
        std::string change; // what was applied, for logs and replies
    };

    struct Edit {
        std::vector<RuleSpec> rules; // CLI rules after the change
        std::string description;     // "added rule 3: drop 3306/tcp"
    };

    bool check_state(const StateLoad& state, std::string& error) const;
    std::string unresolved_rule_error(const RuleStore& store, const StateLoad& state) const;
    std::optional<Edit> edit_rules(const Request& request, std::string& error) const;
    Reply apply_change(const Request& request);
    Reply remove_unbuilt(const Request& request, const Edit& edit,
                         const std::string& still_broken);
    Reply list_rules() const;
    Reply report_status() const;
    Reply confirm_change();

    // Compile `table` and publish it; the caller has written the state and
    // set the new CLI rules. Counters carry over from the rules in force,
    // which had `previous_cli` in front; `same_file` when only CLI rules
    // changed.
    std::string publish(RuleTable table, const std::vector<RuleSpec>& previous_cli, bool same_file);
    std::shared_ptr<const Ruleset> current() const;

    RulesetHolder* holder_;
    std::string state_dir_;
    ClassifierKind kind_;
    ServiceHooks hooks_;
    Clock::time_point started_ = Clock::now();

    mutable std::mutex mutex_; // guards everything below
    RuleStore store_;
    std::uint64_t generation_ = 0;
    std::optional<PendingConfirm> pending_;
    bool offline_ = false; // started by start_offline()
};

} // namespace portwall::control
