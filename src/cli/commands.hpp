// Registration of the portwall subcommands. Each command lives in its own
// cmd_*.cpp file and stores its exit status in `exit_status` when it runs.
#pragma once

#include <CLI/CLI.hpp>

namespace portwall::cli {

void add_check_command(CLI::App& app, int& exit_status);
void add_replay_command(CLI::App& app, int& exit_status);
void add_run_command(CLI::App& app, int& exit_status);
void add_control_commands(CLI::App& app, int& exit_status);

} // namespace portwall::cli
