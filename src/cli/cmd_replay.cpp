// PLACEHOLDER: replaced by the replay command.
#include "cli/commands.hpp"
namespace portwall::cli {
void add_replay_command(CLI::App&, int&) {}
}
