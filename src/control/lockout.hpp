// Anti-lockout: would a change drop the SSH connection that the command
// itself came over?
//
// The client sends its SSH_CONNECTION environment variable ("CLIENT_ADDRESS
// CLIENT_PORT SERVER_ADDRESS SERVER_PORT", set by OpenSSH's sshd) with each
// request. The daemon judges a TCP packet from that client to that server
// port against the old and the new table.
#pragma once

#include "classify/rule.hpp"
#include "decode/packet.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace portwall::control {

// Parse SSH_CONNECTION. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) become
// IPv4, because that is how the kernel queues those packets.
std::optional<PacketView> parse_ssh_connection(std::string_view text, std::string& error);

// The verdict `table` gives `packet`, by the reference first-match semantics,
// and the 0-based index of the deciding rule (table.rules.size() for the
// policy).
Action judge_packet(const RuleTable& table, const PacketView& packet, std::size_t& deciding_rule);

} // namespace portwall::control
