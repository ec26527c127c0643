// PLACEHOLDER: replaced by the control commands.
#include "cli/commands.hpp"
namespace portwall::cli {
void add_control_commands(CLI::App&, int&) {}
}
