// portwall: a userspace packet firewall on NFQUEUE.
#include "cli/commands.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv)
{
    CLI::App app{
        "portwall: a userspace packet firewall. It filters the packets that netfilter queues to\n"
        "it (NFQUEUE) with a TOML rule file, checks rule files, and replays captures through\n"
        "the same rules."};
    app.require_subcommand(1);
    app.set_version_flag("--version", "portwall " PORTWALL_VERSION);

    int exit_status = 0;
    portwall::cli::add_check_command(app, exit_status);
    portwall::cli::add_replay_command(app, exit_status);
    portwall::cli::add_run_command(app, exit_status);
    portwall::cli::add_control_commands(app, exit_status);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        // CLI11 uses exit code 0 for --help and --version, 106 and up for usage
        // errors; scripts only need "usage error", so map those to 2.
        const int code = app.exit(error);
        return code == 0 ? 0 : 2;
    }
    return exit_status;
}
