// `portwall block|allow|unblock|insert|delete`: change the rules in force
// from the command line, through the daemon's control socket.
#include "cli/control_client.hpp"

#include <memory>

namespace portwall::cli {

namespace {

struct ChangeOptions {
    ClientOptions client;
    control::RuleSpec rule;
    std::string action_word; // insert: block or allow
    std::uint32_t position = 0;
    std::string target; // delete: NUMBER or NAME
    bool dry_run = false;
    bool force = false;
    std::uint32_t confirm_seconds = 0;
};

constexpr const char* rule_footer =
    "PORT is a port or range with an optional protocol: 22, 3306/tcp, 6000-6100/udp; without a\n"
    "protocol it means tcp, udp, udplite and sctp. ADDR is an IPv4 or IPv6 address, a prefix\n"
    "(198.18.0.0/15, 2001:db8::/32) or @SET, a set of the rule file; --from and --to take a\n"
    "comma-separated list or repeat. CLI rules are tried before the rule file's rules, so a\n"
    "block here wins over an allow in the file; `portwall list` shows the order.";

void add_safety_options(CLI::App& command, ChangeOptions& options)
{
    command.add_flag("--dry-run", options.dry_run, "Print what would change and change nothing.");
    command.add_flag("--force", options.force,
                     "Apply even if the change drops the SSH connection this command came over.");
    command
        .add_option("--confirm", options.confirm_seconds,
                    "Roll the change back after SECONDS unless `portwall confirm` follows.")
        ->check(CLI::Range(1u, 86400u));
}

void add_rule_options(CLI::App& command, ChangeOptions& options, bool with_name)
{
    command.add_option("PORT", options.rule.port, "Destination port or range, e.g. 3306/tcp.");
    command.add_option("--from", options.rule.from, "Source addresses, prefixes or @SET.")
        ->delimiter(',');
    command.add_option("--to", options.rule.to, "Destination addresses, prefixes or @SET.")
        ->delimiter(',');
    if (!with_name)
        return;
    command.add_option("--comment", options.rule.comment, "Comment shown by `portwall list`.");
    command.add_option("--name", options.rule.name,
                       "Unique rule name ([A-Za-z0-9_.-], not all digits), for `delete NAME`.");
}

// Sends the change. A rule with no port and no address would match every
// packet, which is almost never what the admin means, so it is rejected here.
int send_change(ChangeOptions& options, control::Command command)
{
    const bool names_rule = command != control::Command::remove;
    if (names_rule && options.rule.port.empty() && options.rule.from.empty() &&
        options.rule.to.empty()) {
        std::cerr << "portwall " << control::command_name(command)
                  << ": give a PORT[/PROTO], --from or --to; a rule without any would match "
                     "every packet\n";
        return exit_failed;
    }
    control::Request request;
    request.command = command;
    request.rule = options.rule;
    request.position = options.position;
    request.target = options.target;
    request.dry_run = options.dry_run;
    request.force = options.force;
    request.confirm_seconds = options.confirm_seconds;
    return run_request(options.client, std::move(request), nullptr, false);
}

CLI::App* add_rule_command(CLI::App& app, int& exit_status, const char* name,
                           const char* description, control::Command command, Action action)
{
    auto options = std::make_shared<ChangeOptions>();
    options->rule.action = action;
    CLI::App* sub = app.add_subcommand(name, description);
    add_rule_options(*sub, *options, command != control::Command::unblock);
    add_safety_options(*sub, *options);
    add_client_options(*sub, options->client, true);
    sub->footer(rule_footer);
    sub->callback(
        [options, command, &exit_status] { exit_status = send_change(*options, command); });
    return sub;
}

void add_insert_command(CLI::App& app, int& exit_status)
{
    auto options = std::make_shared<ChangeOptions>();
    CLI::App* sub = app.add_subcommand(
        "insert", "Add a rule at POSITION among the CLI rules (1 = tried first).");
    sub->add_option("POSITION", options->position, "1 up to the number of CLI rules plus one.")
        ->required()
        ->check(CLI::Range(1u, 1000000u));
    sub->add_option("ACTION", options->action_word, "block or allow.")
        ->required()
        ->check(CLI::IsMember({"block", "allow"}));
    add_rule_options(*sub, *options, true);
    add_safety_options(*sub, *options);
    add_client_options(*sub, options->client, true);
    sub->footer(rule_footer);
    sub->callback([options, &exit_status] {
        options->rule.action = options->action_word == "allow" ? Action::accept : Action::drop;
        exit_status = send_change(*options, control::Command::insert);
    });
}

void add_delete_command(CLI::App& app, int& exit_status)
{
    auto options = std::make_shared<ChangeOptions>();
    CLI::App* sub = app.add_subcommand(
        "delete", "Remove a CLI rule by its number in `portwall list` or by its name.");
    sub->add_option("RULE", options->target, "Rule NUMBER or NAME.")->required();
    add_safety_options(*sub, *options);
    add_client_options(*sub, options->client, true);
    sub->callback(
        [options, &exit_status] { exit_status = send_change(*options, control::Command::remove); });
}

} // namespace

void add_change_commands(CLI::App& app, int& exit_status)
{
    add_rule_command(app, exit_status, "block",
                     "Drop packets to PORT (optionally from/to ADDR) from now on, and cut open "
                     "connections the new rule drops.",
                     control::Command::block, Action::drop);
    add_rule_command(app, exit_status, "allow", "Accept packets to PORT (optionally from/to ADDR).",
                     control::Command::allow, Action::accept);
    add_rule_command(app, exit_status, "unblock",
                     "Remove the CLI block rule with exactly this PORT, --from and --to.",
                     control::Command::unblock, Action::drop);
    add_insert_command(app, exit_status);
    add_delete_command(app, exit_status);
}

} // namespace portwall::cli
