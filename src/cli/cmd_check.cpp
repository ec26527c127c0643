// PLACEHOLDER: replaced by the check command.
#include "cli/commands.hpp"
namespace portwall::cli {
void add_check_command(CLI::App&, int&) {}
}
