#include "control/service.hpp"

#include "common/log.hpp"
#include "control/lockout.hpp"
#include "control/report.hpp"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <unistd.h>

namespace portwall::control {

using nlohmann::json;

namespace {

Reply failure(std::string message)
{
    return Reply{false, std::move(message), json::object()};
}

// True when two CLI rules match the same packets with the same action; the
// name, comment and creation time do not count.
bool same_match(const RuleSpec& left, const RuleSpec& right)
{
    return left.action == right.action && left.port == right.port && left.from == right.from &&
           left.to == right.to;
}

// Finds a CLI rule by NUMBER (1-based, over all rules in force) or NAME.
// Returns its index among the CLI rules, or nullopt with `error`.
std::optional<std::size_t> find_cli_rule(const RuleStore& store, const std::string& target,
                                         std::string& error)
{
    const std::vector<RuleSpec>& rules = store.cli_rules();
    const std::size_t file_rules = store.file().table.rules.size();
    // "#3" is how listings and diagnostics show an unnamed rule, so it is
    // read as the position 3, like "3".
    const std::string digits = target.starts_with('#') ? target.substr(1) : target;
    const bool is_number = !digits.empty() && digits.size() <= 9 &&
                           digits.find_first_not_of("0123456789") == std::string::npos;
    if (is_number) {
        const std::size_t number = std::stoul(digits);
        if (number >= 1 && number <= rules.size())
            return number - 1;
        if (number > rules.size() && number <= rules.size() + file_rules) {
            const Rule& rule = store.file().table.rules[number - rules.size() - 1];
            error = "rule " + target + " comes from " + rule.origin.file + ":" +
                    std::to_string(rule.origin.line) +
                    "; edit the rule file and reload to change it";
            return std::nullopt;
        }
        error = "no rule number " + target + "; there are " +
                std::to_string(rules.size() + file_rules) + " rules (see `portwall list`)";
        return std::nullopt;
    }
    for (std::size_t i = 0; i < rules.size(); ++i) {
        if (rules[i].name == target)
            return i;
    }
    for (const Rule& rule : store.file().table.rules) {
        if (rule.name == target) {
            error = "rule \"" + target + "\" comes from " + rule.origin.file + ":" +
                    std::to_string(rule.origin.line) +
                    "; edit the rule file and reload to change it";
            return std::nullopt;
        }
    }
    error = "no rule named \"" + target + "\" (see `portwall list`)";
    return std::nullopt;
}

// Refuses a change that turns the client's own SSH connection from accepted
// to dropped. Returns an error message, or "" when the change may go ahead.
std::string check_lockout(const Request& request, const RuleTable& before, const RuleTable& after)
{
    // --confirm is allowed through: if the change does cut the connection,
    // the admin cannot confirm it and it rolls back by itself.
    if (request.ssh_connection.empty() || request.force || request.confirm_seconds != 0)
        return "";
    std::string error;
    const std::optional<PacketView> ssh = parse_ssh_connection(request.ssh_connection, error);
    if (!ssh) {
        LOG_WARNING("control: anti-lockout check skipped: %s", error.c_str());
        return "";
    }
    std::size_t old_rule = 0;
    std::size_t new_rule = 0;
    const Action old_verdict = judge_packet(before, *ssh, old_rule);
    const Action new_verdict = judge_packet(after, *ssh, new_rule);
    if (old_verdict != Action::accept || new_verdict != Action::drop)
        return "";

    const std::string decider = new_rule == after.rules.size()
                                    ? std::string("the policy")
                                    : "rule " + std::to_string(new_rule + 1);
    return "refused: " + decider + " would drop your own SSH connection (" +
           request.ssh_connection + "); add --confirm SECONDS to apply it with a rollback unless " +
           "`portwall confirm` follows in time, or --force to apply it for good";
}

// Copies the counters of unnamed rules from `previous`, which
// Ruleset::carry_counters_from leaves at zero because it matches by name.
// A CLI rule is the same rule when its spec, creation time included, is
// equal. File rules keep their order within one file, so after a CLI change
// (`same_file`) they are the same rules shifted by the change in CLI rules.
void carry_unnamed_counters(const Ruleset& previous, const std::vector<RuleSpec>& previous_cli,
                            const Ruleset& next, const std::vector<RuleSpec>& next_cli,
                            bool same_file)
{
    const std::vector<Rule>& rules = next.table().rules;
    for (std::size_t i = 0; i < rules.size(); ++i) {
        if (!rules[i].name.empty())
            continue;
        std::optional<std::size_t> old_index;
        if (i < next_cli.size()) {
            const auto found = std::find(previous_cli.begin(), previous_cli.end(), next_cli[i]);
            if (found != previous_cli.end())
                old_index = static_cast<std::size_t>(found - previous_cli.begin());
        } else if (same_file) {
            old_index = previous_cli.size() + (i - next_cli.size());
        }
        if (!old_index || *old_index >= previous.table().rules.size())
            continue;
        const HitCounter& old = previous.rule_counter(*old_index);
        HitCounter& counter = next.counter(Match{static_cast<std::uint32_t>(i), rules[i].action});
        counter.packets.store(old.packets.load(std::memory_order_relaxed),
                              std::memory_order_relaxed);
        counter.bytes.store(old.bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
}

bool removes_rules(Command command)
{
    return command == Command::remove || command == Command::unblock;
}

// Quotes `text` for a POSIX shell when it contains a character that paths
// rarely have, so that a command in a message can be pasted as is.
std::string shell_word(const std::string& text)
{
    const bool plain = !text.empty() && text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                               "abcdefghijklmnopqrstuvwxyz"
                                                               "0123456789_./:@%+=,-") ==
                                            std::string::npos;
    if (plain)
        return text;
    std::string quoted = "'";
    for (const char c : text)
        quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return quoted + "'";
}

std::string absolute_path(const std::string& path)
{
    std::error_code code;
    const std::filesystem::path absolute = std::filesystem::absolute(path, code);
    return code ? path : absolute.lexically_normal().string();
}

} // namespace

ControlService::ControlService(RulesetHolder* holder, std::string state_dir, ClassifierKind kind)
    : holder_(holder), state_dir_(std::move(state_dir)), kind_(kind)
{
}

void ControlService::set_hooks(ServiceHooks hooks)
{
    std::lock_guard lock(mutex_);
    hooks_ = std::move(hooks);
}

bool ControlService::check_state(const StateLoad& state, std::string& error) const
{
    if (!state.ok()) {
        error = "the state file is corrupt, so portwall will not start with rules it did not "
                "mean:";
        for (const Diagnostic& diagnostic : state.diagnostics) {
            error += '\n';
            error += format_diagnostic(diagnostic);
        }
        error += "\nfix or move it aside (the daemon never discards it by itself)";
        return false;
    }

    // Check each saved rule on its own first, so that an error names its line.
    for (std::size_t i = 0; i < state.rules.size(); ++i) {
        if (!canonical_rule_spec(state.rules[i], error)) {
            error = state_file_path(state_dir_) + ":" + std::to_string(state.lines[i]) +
                    ":1: error: " + error + "; fix or remove this line";
            return false;
        }
    }
    return true;
}

// The start error for the saved rules that name a set the file lacks, or ""
// when every set is defined. It names each rule's line in the state file, the
// rule and the set, then the commands that remove the rules with the daemon
// stopped. The commands run from the last rule back, so that deleting one by
// number does not renumber those still to come.
std::string ControlService::unresolved_rule_error(const RuleStore& store,
                                                  const StateLoad& state) const
{
    const std::string rules_file = absolute_path(store.file_path());
    std::string errors;
    std::vector<std::string> commands;
    for (std::size_t i = 0; i < state.rules.size(); ++i) {
        std::string problem;
        if (resolve_rule_spec(state.rules[i], store.file().sets, problem))
            continue;
        const RuleSpec& spec = state.rules[i];
        const std::string target = spec.name.empty() ? std::to_string(i + 1) : spec.name;
        errors += state_file_path(state_dir_) + ":" + std::to_string(state.lines[i]) +
                  ":1: error: CLI rule " + std::to_string(i + 1) + " (" +
                  describe_rule_spec(spec) + "): " + problem + " (" + rules_file + ")\n";
        commands.push_back("  portwall delete " + shell_word(target) + " --offline --state-dir " +
                           shell_word(absolute_path(state_dir_)) + " --rules " +
                           shell_word(rules_file));
    }
    if (commands.empty())
        return "";
    const bool single_rule = commands.size() == 1;
    std::string text = errors + "portwall will not start with " +
                       (single_rule ? "this rule" : "these rules") + " changed or left out\n" +
                       "restore the set in " + rules_file + ", or remove " +
                       (single_rule ? "the rule" : "the rules") + " with:";
    for (auto command = commands.rbegin(); command != commands.rend(); ++command)
        text += "\n" + *command;
    return text;
}

bool ControlService::start(RuleFile file, const std::string& file_path, const StateLoad& state,
                           std::string& error)
{
    if (!check_state(state, error))
        return false;

    std::lock_guard lock(mutex_);
    RuleStore store;
    store.set_file(std::move(file), file_path);
    store.set_cli_rules(state.rules);
    error = unresolved_rule_error(store, state);
    if (!error.empty())
        return false;
    std::optional<RuleTable> table = store.build(error);
    if (!table) {
        error = state_file_path(state_dir_) + ": " + error;
        return false;
    }
    store_ = std::move(store);
    publish(std::move(*table), {}, false);
    if (store_.cli_rules().size() > max_cli_rules) {
        // Only a state file edited by hand gets here. Its rules stay in force,
        // because dropping some would filter with rules the admin did not mean.
        LOG_WARNING("control: %s has %zu CLI rules, more than the limit of %zu; changes that "
                    "add rules are rejected until rules are deleted",
                    state_file_path(state_dir_).c_str(), store_.cli_rules().size(),
                    max_cli_rules);
    }
    LOG_INFO("control: loaded %zu rules from %s and %zu from %s", store_.file().table.rules.size(),
             file_path.c_str(), store_.cli_rules().size(), state_file_path(state_dir_).c_str());
    return true;
}

bool ControlService::start_offline(RuleFile file, const std::string& file_path,
                                   const StateLoad& state, std::string& error)
{
    if (holder_ != nullptr) {
        error = "an offline start needs a service that publishes nothing";
        return false;
    }
    if (!check_state(state, error))
        return false;

    std::lock_guard lock(mutex_);
    store_.set_file(std::move(file), file_path);
    store_.set_cli_rules(state.rules);
    offline_ = true;
    return true;
}

bool ControlService::reload_file(RuleFile file, const std::string& file_path, std::string& error)
{
    std::lock_guard lock(mutex_);
    RuleStore store = store_;
    store.set_file(std::move(file), file_path);
    std::optional<RuleTable> table = store.build(error);
    if (!table) {
        error = "reload of " + file_path + " rejected, old rules stay: " + error;
        return false;
    }
    const std::vector<RuleSpec> previous_cli = store_.cli_rules();
    store_ = std::move(store);
    publish(std::move(*table), previous_cli, false);
    return true;
}

std::size_t ControlService::cli_rule_count() const
{
    std::lock_guard lock(mutex_);
    return store_.cli_rules().size();
}

std::shared_ptr<const Ruleset> ControlService::current() const
{
    return holder_ != nullptr ? holder_->load() : nullptr;
}

std::string ControlService::publish(RuleTable table, const std::vector<RuleSpec>& previous_cli,
                                    bool same_file)
{
    ++generation_;
    if (holder_ == nullptr)
        return "";
    auto next = std::make_shared<Ruleset>(std::move(table), kind_, generation_);
    if (const std::shared_ptr<const Ruleset> previous = holder_->load()) {
        next->carry_counters_from(*previous);
        carry_unnamed_counters(*previous, previous_cli, *next, store_.cli_rules(), same_file);
    }
    holder_->store(next);
    return hooks_.after_publish ? hooks_.after_publish(*next) : "";
}

Reply ControlService::handle(const Request& request)
{
    switch (request.command) {
    case Command::list:
        return list_rules();
    case Command::status:
        return report_status();
    case Command::confirm:
        return confirm_change();
    default:
        return apply_change(request);
    }
}

std::optional<ControlService::Edit> ControlService::edit_rules(const Request& request,
                                                               std::string& error) const
{
    Edit edit{store_.cli_rules(), ""};
    if (request.command == Command::remove) {
        const std::optional<std::size_t> index = find_cli_rule(store_, request.target, error);
        if (!index)
            return std::nullopt;
        edit.description = "deleted rule " + std::to_string(*index + 1) + ": " +
                           describe_rule_spec(edit.rules[*index]);
        edit.rules.erase(edit.rules.begin() + static_cast<std::ptrdiff_t>(*index));
        return edit;
    }

    std::optional<RuleSpec> spec = canonical_rule_spec(request.rule, error);
    if (!spec)
        return std::nullopt;

    if (request.command == Command::unblock) {
        spec->action = Action::drop;
        const auto before = edit.rules.size();
        std::erase_if(edit.rules, [&](const RuleSpec& rule) { return same_match(rule, *spec); });
        if (edit.rules.size() == before) {
            error = "no CLI rule blocks " + describe_rule_spec(*spec).substr(5) +
                    "; `portwall list` shows the rules in force, and rules from the rule file "
                    "change only by editing it";
            return std::nullopt;
        }
        edit.description = "removed " + std::to_string(before - edit.rules.size()) +
                           " CLI rule(s): " + describe_rule_spec(*spec);
        return edit;
    }

    if (edit.rules.size() >= max_cli_rules) {
        error = "rejected: there are " + std::to_string(edit.rules.size()) +
                " CLI rules and the limit is " + std::to_string(max_cli_rules) +
                "; delete CLI rules (`portwall delete`) or move them into the rule file";
        return std::nullopt;
    }

    for (std::size_t i = 0; i < edit.rules.size(); ++i) {
        if (same_match(edit.rules[i], *spec) && request.command != Command::insert) {
            error = "rule " + std::to_string(i + 1) +
                    " already does this: " + describe_rule_spec(edit.rules[i]);
            return std::nullopt;
        }
    }

    std::size_t index = edit.rules.size();
    if (request.command == Command::insert) {
        if (request.position < 1 || request.position > edit.rules.size() + 1) {
            error = "position " + std::to_string(request.position) + " is outside 1-" +
                    std::to_string(edit.rules.size() + 1) +
                    ": CLI rules come first, and the rule file's rules after them change only "
                    "by editing the file";
            return std::nullopt;
        }
        index = request.position - 1;
    }
    spec->created_unix = static_cast<std::int64_t>(std::time(nullptr));
    edit.rules.insert(edit.rules.begin() + static_cast<std::ptrdiff_t>(index), *spec);
    edit.description = "added rule " + std::to_string(index + 1) + ": " + describe_rule_spec(*spec);
    return edit;
}

Reply ControlService::apply_change(const Request& request)
{
    std::lock_guard lock(mutex_);
    if (pending_ && !request.dry_run) {
        return failure("a change awaits confirmation (" + pending_->change +
                       "); run `portwall confirm` or wait for its rollback first");
    }

    std::string error;
    std::optional<Edit> edit = edit_rules(request, error);
    if (!edit)
        return failure(error);
    std::optional<RuleTable> table = store_.build(edit->rules, error);
    std::string old_error;
    std::optional<RuleTable> old_table = store_.build(old_error);
    if (!old_table && offline_ && removes_rules(request.command))
        return remove_unbuilt(request, *edit, table.has_value() ? "" : error);
    if (!table)
        return failure(error);
    if (!old_table)
        return failure("the rules in force no longer build: " + old_error);

    const std::string lockout = check_lockout(request, *old_table, *table);
    if (!lockout.empty())
        return failure(lockout);

    const std::size_t rule_count = table->rules.size();
    if (request.dry_run) {
        return Reply{true,
                     "dry run, nothing changed: would have " + edit->description + " (" +
                         std::to_string(rule_count) + " rules in force)",
                     {{"dry_run", true}, {"change", edit->description}}};
    }

    // Without --confirm the state file is written before the swap, so a
    // crash between the two leaves the change on disk, to be loaded at the
    // next start. With --confirm it is written only on `portwall confirm`.
    if (request.confirm_seconds == 0 && !save_state(state_dir_, edit->rules, error))
        return failure("change not applied: " + error);

    std::vector<RuleSpec> previous = store_.cli_rules();
    store_.set_cli_rules(edit->rules);
    const std::string note = publish(std::move(*table), previous, true);
    LOG_INFO("control: %s; generation %llu, %zu rules", edit->description.c_str(),
             static_cast<unsigned long long>(generation_), rule_count);

    std::string message =
        edit->description + "; " + std::to_string(rule_count) +
        (holder_ == nullptr ? " rules at the next start"
                            : " rules in force, generation " + std::to_string(generation_));
    if (request.confirm_seconds != 0) {
        pending_ = PendingConfirm{std::move(previous),
                                  Clock::now() + std::chrono::seconds(request.confirm_seconds),
                                  edit->description};
        message += "; rolls back in " + std::to_string(request.confirm_seconds) +
                   " s unless `portwall confirm` follows";
    }
    if (!note.empty())
        message += "; " + note;
    return Reply{
        true,
        message,
        {{"change", edit->description}, {"generation", generation_}, {"rules", rule_count}}};
}

// An offline `delete` or `unblock` in a state whose rules do not build, the
// repair that unresolved_rule_error() offers. No daemon runs with these
// rules, so there is no connection for the anti-lockout check to keep.
// `still_broken` is the build error after the change, "" when it builds.
Reply ControlService::remove_unbuilt(const Request& request, const Edit& edit,
                                     const std::string& still_broken)
{
    std::string message = edit.description;
    if (!still_broken.empty())
        message += "; the saved rules still do not build: " + still_broken;
    if (request.dry_run)
        return Reply{true, "dry run, nothing changed: would have " + message,
                     {{"dry_run", true}, {"change", edit.description}}};

    std::string error;
    if (!save_state(state_dir_, edit.rules, error))
        return failure("change not applied: " + error);
    store_.set_cli_rules(edit.rules);
    ++generation_;
    return Reply{true, message, {{"change", edit.description}, {"builds", still_broken.empty()}}};
}

Reply ControlService::confirm_change()
{
    std::lock_guard lock(mutex_);
    if (!pending_)
        return failure("no change is waiting for confirmation");
    std::string error;
    if (!save_state(state_dir_, store_.cli_rules(), error))
        return failure("confirmation failed, the change stays unconfirmed: " + error);
    const std::string change = pending_->change;
    pending_.reset();
    LOG_INFO("control: confirmed: %s", change.c_str());
    return Reply{true, "confirmed and saved: " + change, json::object()};
}

std::optional<ControlService::Clock::time_point> ControlService::confirm_deadline() const
{
    std::lock_guard lock(mutex_);
    if (!pending_)
        return std::nullopt;
    return pending_->deadline;
}

void ControlService::expire_confirm(Clock::time_point now)
{
    std::lock_guard lock(mutex_);
    if (!pending_ || now < pending_->deadline)
        return;
    std::string error;
    std::optional<RuleTable> table = store_.build(pending_->previous, error);
    if (!table) {
        // The file was reloaded meanwhile and the old CLI rules no longer fit
        // it; keep the change rather than publish nothing.
        LOG_ERROR("control: rollback of \"%s\" failed, change stays: %s", pending_->change.c_str(),
                  error.c_str());
        pending_.reset();
        return;
    }
    std::vector<RuleSpec> unconfirmed = store_.cli_rules();
    store_.set_cli_rules(pending_->previous);
    publish(std::move(*table), unconfirmed, true);
    LOG_WARNING("control: not confirmed in time, rolled back: %s", pending_->change.c_str());
    pending_.reset();
}

Reply ControlService::list_rules() const
{
    std::lock_guard lock(mutex_);
    const std::shared_ptr<const Ruleset> ruleset = current();
    if (ruleset) {
        json data = rules_report(ruleset->table(), store_.cli_rules(), ruleset.get());
        data["generation"] = ruleset->generation();
        return Reply{true, "", std::move(data)};
    }
    std::string error;
    if (std::optional<RuleTable> table = store_.build(error))
        return Reply{true, "", rules_report(*table, store_.cli_rules(), nullptr)};
    if (!offline_)
        return failure(error);

    // Offline, the saved rules are listed even when they stop the daemon,
    // so that the admin can find the rule to delete.
    std::vector<std::string> problems;
    const RuleTable listing = store_.build_listing(problems);
    json data = rules_report(listing, store_.cli_rules(), nullptr);
    for (std::size_t i = 0; i < problems.size(); ++i) {
        if (!problems[i].empty())
            data["rules"][i]["error"] = problems[i];
    }
    data["error"] = error;
    return Reply{true, "", std::move(data)};
}

Reply ControlService::report_status() const
{
    std::lock_guard lock(mutex_);
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_);
    const std::shared_ptr<const Ruleset> ruleset = current();
    json data = {
        {"running", true},
        {"pid", static_cast<long>(::getpid())},
        {"uptime_seconds", uptime.count()},
        {"generation", ruleset ? ruleset->generation() : generation_},
        {"rules", ruleset ? ruleset->table().rules.size() : 0},
        {"cli_rules", store_.cli_rules().size()},
        {"rule_file", store_.file_path()},
        {"state_file", state_file_path(state_dir_)},
        {"policy", std::string(action_name(store_.file().table.policy))},
    };
    if (pending_) {
        const auto left =
            std::chrono::duration_cast<std::chrono::seconds>(pending_->deadline - Clock::now());
        data["confirm_pending_seconds"] = left.count();
    }
    data["daemon"] = hooks_.daemon_status ? hooks_.daemon_status() : json::object();
    data["kernel"] = kernel_queues_report();
    return Reply{true, "", std::move(data)};
}

} // namespace portwall::control
