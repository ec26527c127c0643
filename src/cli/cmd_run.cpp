// PLACEHOLDER: replaced by the run command.
#include "cli/commands.hpp"
namespace portwall::cli {
void add_run_command(CLI::App&, int&) {}
}
