// The client side of the control socket, used by the CLI commands.
#pragma once

#include "control/protocol.hpp"

#include <optional>
#include <string>

namespace portwall::control {

enum class ClientError : std::uint8_t { none, daemon_down, permission, protocol };

// Send `request` to the daemon at `socket_path` and wait up to
// `timeout_seconds` for its reply. On failure returns nullopt and sets
// `kind` and an `error` that tells the user what to do next (for a daemon
// that is down: start it, or use --offline).
std::optional<Reply> send_request(const std::string& socket_path, const Request& request,
                                  int timeout_seconds, ClientError& kind, std::string& error);

} // namespace portwall::control
