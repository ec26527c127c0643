// Shared plumbing of the control commands; each command group registers
// itself from its own file (cmd_change.cpp, cmd_report.cpp).
#include "cli/commands.hpp"
#include "cli/control_client.hpp"

#include "common/log.hpp"
#include "control/client.hpp"
#include "control/server.hpp"
#include "control/service.hpp"
#include "control/state_file.hpp"
#include "rules/compiler.hpp"

#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace portwall::cli {

namespace {

constexpr const char* default_rules_file = "/etc/portwall/rules.toml";

// Apply `request` to the state file with no daemon, through the same
// ControlService the daemon uses, so that offline edits follow the same
// checks and ordering.
std::optional<control::Reply> apply_offline(const ClientOptions& options,
                                            const control::Request& request, std::string& error)
{
    if (request.command == control::Command::status ||
        request.command == control::Command::confirm) {
        error = std::string(control::command_name(request.command)) +
                " needs the running daemon; --offline only edits and lists the saved rules";
        return std::nullopt;
    }
    // The service logs each load and change at info level, which suits the
    // daemon's journal but not a command's output.
    set_log_level(LogLevel::warning);
    control::StateLock lock;
    if (!lock.acquire(options.state_dir, error))
        return std::nullopt;

    RuleFile file;
    if (std::filesystem::exists(options.rules_file)) {
        CompileResult compiled = compile_rules_file(options.rules_file);
        if (!compiled.ok()) {
            for (const Diagnostic& diagnostic : compiled.diagnostics)
                std::cerr << format_diagnostic(diagnostic, compiled.source_text);
            error = options.rules_file + " has errors; fix it before editing the state";
            return std::nullopt;
        }
        file = std::move(*compiled.rules);
    } else {
        std::cerr << "portwall: warning: " << options.rules_file
                  << " not found; CLI rules are checked without the rule file\n";
    }

    control::ControlService service(nullptr, options.state_dir, ClassifierKind::linear);
    if (!service.start_offline(std::move(file), options.rules_file,
                               control::load_state(options.state_dir), error))
        return std::nullopt;
    return service.handle(request);
}

} // namespace

void add_client_options(CLI::App& command, ClientOptions& options, bool allow_offline)
{
    options.socket_path = control::default_socket_path;
    options.state_dir = control::default_state_dir;
    options.rules_file = default_rules_file;
    command.add_option("--socket", options.socket_path, "Control socket of the daemon.")
        ->capture_default_str();
    command
        .add_option("--timeout", options.timeout_seconds, "Seconds to wait for the daemon's reply.")
        ->capture_default_str()
        ->check(CLI::Range(1, 3600));
    if (!allow_offline)
        return;
    command.add_flag("--offline", options.offline,
                     "Edit the saved rules in --state-dir while the daemon is stopped; they take "
                     "effect at its next start.");
    command.add_option("--state-dir", options.state_dir, "State directory, with --offline.")
        ->capture_default_str();
    command
        .add_option("--rules", options.rules_file,
                    "Rule file the daemon loads, with --offline (to number rules and check "
                    "names).")
        ->capture_default_str();
}

int run_request(const ClientOptions& options, control::Request request,
                void (*print_data)(const control::Reply& reply, bool json), bool json)
{
    if (const char* ssh = std::getenv("SSH_CONNECTION"))
        request.ssh_connection = ssh;

    std::string error;
    std::optional<control::Reply> reply;
    control::ClientError kind = control::ClientError::none;
    if (options.offline)
        reply = apply_offline(options, request, error);
    else
        reply = control::send_request(options.socket_path, request, options.timeout_seconds, kind,
                                      error);

    if (!reply) {
        if (json && request.command == control::Command::status &&
            kind == control::ClientError::daemon_down) {
            std::cout << nlohmann::json{{"running", false}, {"error", error}}.dump(2) << '\n';
        } else {
            std::cerr << "portwall " << control::command_name(request.command) << ": " << error
                      << '\n';
        }
        return kind == control::ClientError::daemon_down ? exit_daemon_down : exit_failed;
    }
    if (!reply->ok) {
        std::cerr << "portwall " << control::command_name(request.command) << ": " << reply->message
                  << '\n';
        return exit_failed;
    }
    if (print_data != nullptr)
        print_data(*reply, json);
    else if (json)
        std::cout << reply->data.dump(2) << '\n';
    else if (options.offline && control::changes_rules(request.command) && !request.dry_run)
        std::cout << "offline, saved for the next start: " << reply->message << '\n';
    else
        std::cout << reply->message << '\n';
    return exit_ok;
}

void add_control_commands(CLI::App& app, int& exit_status)
{
    add_change_commands(app, exit_status);
    add_report_commands(app, exit_status);
}

} // namespace portwall::cli
