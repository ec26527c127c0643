// Plumbing shared by the control commands (block, allow, unblock, delete,
// insert, list, status, confirm): options every one of them takes, and
// sending a request to the daemon or, with --offline, applying it to the
// state file directly.
#pragma once

#include "control/protocol.hpp"

#include <CLI/CLI.hpp>

#include <string>

namespace portwall::cli {

struct ClientOptions {
    std::string socket_path;
    std::string state_dir;
    std::string rules_file; // for --offline: numbering and names of file rules
    bool offline = false;
    int timeout_seconds = 10;
};

// Exit statuses of the control commands.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failed = 1;      // the daemon rejected the request
inline constexpr int exit_daemon_down = 3; // as `systemctl status` for a stopped unit

// Add --socket, --offline, --state-dir, --rules and --timeout to `command`.
void add_client_options(CLI::App& command, ClientOptions& options, bool allow_offline);

// Send `request` (or apply it offline), print the outcome, return the exit
// status. `print_data` prints a successful reply's data; null prints the
// message only.
int run_request(const ClientOptions& options, control::Request request,
                void (*print_data)(const control::Reply& reply, bool json), bool json);

void add_change_commands(CLI::App& app, int& exit_status);
void add_report_commands(CLI::App& app, int& exit_status);

} // namespace portwall::cli
