// The control protocol between `portwall` client commands and the daemon.
//
// Transport: a Unix stream socket. The client sends one request and the
// daemon sends one reply, then closes the connection. Each message is one
// JSON object on one line, ended by "\n" (compact JSON never contains a raw
// newline). Every message carries `"v": 1`, the protocol version; a daemon
// rejects any other version with an error reply. docs/control.md lists every
// field.
//
// Request:  {"v":1, "command":"block", "rule":{...}, "position":0, "target":"",
//            "dry_run":false, "force":false, "confirm_seconds":0,
//            "ssh_connection":"198.18.0.1 50000 198.18.0.2 22"}
// Reply:    {"v":1, "ok":true, "message":"...", "data":{...}}
//           {"v":1, "ok":false, "error":"..."}
#pragma once

#include "classify/rule.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portwall::control {

inline constexpr int protocol_version = 1;

// A request longer than this (including its newline) gets an error reply.
// The largest real request is a rule with a few dozen addresses and a
// comment, a few KiB at most.
inline constexpr std::size_t max_request_bytes = 64 * 1024;

// Replies carry `list` output: about 300 bytes a rule, so 64 MiB covers
// 200,000 rules. A client rejects a longer reply.
inline constexpr std::size_t max_reply_bytes = 64 * 1024 * 1024;

enum class Command : std::uint8_t { block, allow, unblock, remove, insert, list, status, confirm };

// Wire name of a command ("delete" for Command::remove).
std::string_view command_name(Command command) noexcept;
std::optional<Command> parse_command_name(std::string_view name) noexcept;

// True for the commands that change rules.
bool changes_rules(Command command) noexcept;

// A rule as an admin states it on the command line, kept as text so that a
// set reference ("@admins") follows the rule file when it is reloaded. The
// text is checked with the rule file's own parsers (rules/syntax.hpp) before
// it is accepted.
struct RuleSpec {
    std::string name; // optional, unique over all rules in force
    Action action = Action::drop;
    std::string port;              // "3306/tcp", "6000-6100", "53/udp"; empty = any
    std::vector<std::string> from; // source addresses, prefixes or "@set"; empty = any
    std::vector<std::string> to;   // destination, as `from`
    std::string comment;
    std::int64_t created_unix = 0; // set by the service that stores the rule

    friend bool operator==(const RuleSpec&, const RuleSpec&) = default;
};

struct Request {
    Command command = Command::status;
    RuleSpec rule;                     // block, allow, unblock, insert
    std::uint32_t position = 0;        // insert: 1-based place in the list of rules
    std::string target;                // delete: a rule NUMBER or NAME
    bool dry_run = false;              // report what would change, change nothing
    bool force = false;                // apply even if it cuts the client's SSH connection
    std::uint32_t confirm_seconds = 0; // > 0: roll back unless confirmed in time
    std::string ssh_connection;        // the client's SSH_CONNECTION, or empty
};

struct Reply {
    bool ok = true;
    std::string message;                            // for people; on failure, the error
    nlohmann::json data = nlohmann::json::object(); // for scripts (list, status)
};

nlohmann::json rule_spec_to_json(const RuleSpec& spec);

// Read a rule spec from JSON. On failure returns nullopt and sets `error`
// naming the key and the value that is wrong.
std::optional<RuleSpec> rule_spec_from_json(const nlohmann::json& value, std::string& error);

// One line of JSON with its "\n".
std::string encode_request(const Request& request);
std::string encode_reply(const Reply& reply);

// Parse one request line (with or without its "\n"). Never throws: any
// malformed input gives nullopt and an `error` naming what is wrong.
std::optional<Request> decode_request(std::string_view line, std::string& error);
std::optional<Reply> decode_reply(std::string_view line, std::string& error);

// Text form of a rule spec for messages: "drop 3306/tcp from 198.18.0.0/24".
std::string describe_rule_spec(const RuleSpec& spec);

} // namespace portwall::control
