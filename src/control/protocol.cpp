#include "control/protocol.hpp"

#include <array>
#include <set>
#include <utility>

namespace portwall::control {

using nlohmann::json;

namespace {

constexpr std::array<std::pair<Command, std::string_view>, 8> command_names{{
    {Command::block, "block"},
    {Command::allow, "allow"},
    {Command::unblock, "unblock"},
    {Command::remove, "delete"},
    {Command::insert, "insert"},
    {Command::list, "list"},
    {Command::status, "status"},
    {Command::confirm, "confirm"},
}};

// Checks one JSON object's keys against the expected ones, so that a typo in
// a hand-written request is an error instead of a silently ignored field.
bool only_known_keys(const json& object, std::initializer_list<std::string_view> known,
                     std::string_view what, std::string& error)
{
    for (const auto& item : object.items()) {
        bool found = false;
        for (std::string_view key : known)
            found = found || item.key() == key;
        if (!found) {
            error = std::string(what) + " has unknown key \"" + item.key() + "\"";
            return false;
        }
    }
    return true;
}

// Copies object[key] into `out` when present. A value of the wrong type is
// an error naming the key and the expected type.
template <typename T>
bool read_optional(const json& object, const char* key, T& out, const char* type_name,
                   std::string& error)
{
    const auto it = object.find(key);
    if (it == object.end())
        return true;

    bool type_ok = false;
    if constexpr (std::is_same_v<T, bool>)
        type_ok = it->is_boolean();
    else if constexpr (std::is_same_v<T, std::string>)
        type_ok = it->is_string();
    else if constexpr (std::is_same_v<T, std::int64_t>)
        type_ok = it->is_number_integer();
    else if constexpr (std::is_same_v<T, std::uint32_t>)
        type_ok = it->is_number_unsigned() && it->template get<std::uint64_t>() <= UINT32_MAX;
    else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
        type_ok = it->is_array();
        for (const json& element : *it)
            type_ok = type_ok && element.is_string();
    }

    if (!type_ok) {
        error = std::string("key \"") + key + "\" must be " + type_name + ", not " + it->dump();
        return false;
    }
    out = it->template get<T>();
    return true;
}

std::optional<json> parse_object(std::string_view line, std::string_view what, std::string& error)
{
    if (!line.empty() && line.back() == '\n')
        line.remove_suffix(1);

    // nlohmann::json keeps the last of two equal keys without a word, but a
    // request that names two commands is ambiguous, so duplicates are errors.
    std::vector<std::set<std::string>> open_objects;
    std::string duplicate;
    const json::parser_callback_t check_keys = [&](int, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) {
            open_objects.emplace_back();
        } else if (event == json::parse_event_t::object_end && !open_objects.empty()) {
            open_objects.pop_back();
        } else if (event == json::parse_event_t::key && !open_objects.empty()) {
            const std::string& key = parsed.get_ref<const std::string&>();
            if (!open_objects.back().insert(key).second && duplicate.empty())
                duplicate = key;
        }
        return true;
    };
    json value = json::parse(line, check_keys, /*allow_exceptions=*/false);
    if (value.is_discarded()) {
        error = std::string(what) + " is not valid JSON";
        return std::nullopt;
    }
    if (!duplicate.empty()) {
        error = std::string(what) + " has key \"" + duplicate + "\" twice";
        return std::nullopt;
    }
    if (!value.is_object()) {
        error = std::string(what) + " must be a JSON object";
        return std::nullopt;
    }

    const auto version = value.find("v");
    if (version == value.end()) {
        error = std::string(what) + " has no protocol version \"v\"";
        return std::nullopt;
    }
    if (!version->is_number_integer()) {
        error = std::string(what) + " has an invalid protocol version " + version->dump() +
                ": \"v\" must be the integer " + std::to_string(protocol_version);
        return std::nullopt;
    }
    if (version->get<std::int64_t>() != protocol_version) {
        error = std::string(what) + " uses protocol version " + version->dump() +
                "; this portwall speaks version " + std::to_string(protocol_version);
        return std::nullopt;
    }
    return value;
}

} // namespace

std::string_view command_name(Command command) noexcept
{
    for (const auto& [value, name] : command_names) {
        if (value == command)
            return name;
    }
    return "unknown";
}

std::optional<Command> parse_command_name(std::string_view name) noexcept
{
    for (const auto& [value, known] : command_names) {
        if (known == name)
            return value;
    }
    return std::nullopt;
}

bool changes_rules(Command command) noexcept
{
    switch (command) {
    case Command::block:
    case Command::allow:
    case Command::unblock:
    case Command::remove:
    case Command::insert:
        return true;
    case Command::list:
    case Command::status:
    case Command::confirm:
        return false;
    }
    return false;
}

json rule_spec_to_json(const RuleSpec& spec)
{
    json value = json::object();
    if (!spec.name.empty())
        value["name"] = spec.name;
    value["action"] = std::string(action_name(spec.action));
    if (!spec.port.empty())
        value["port"] = spec.port;
    if (!spec.from.empty())
        value["from"] = spec.from;
    if (!spec.to.empty())
        value["to"] = spec.to;
    if (!spec.comment.empty())
        value["comment"] = spec.comment;
    if (spec.created_unix != 0)
        value["created"] = spec.created_unix;
    return value;
}

std::optional<RuleSpec> rule_spec_from_json(const json& value, std::string& error)
{
    if (!value.is_object()) {
        error = "a rule must be a JSON object";
        return std::nullopt;
    }
    if (!only_known_keys(value, {"name", "action", "port", "from", "to", "comment", "created"},
                         "rule", error))
        return std::nullopt;

    RuleSpec spec;
    std::string action;
    const bool read_ok = read_optional(value, "name", spec.name, "a string", error) &&
                         read_optional(value, "action", action, "a string", error) &&
                         read_optional(value, "port", spec.port, "a string", error) &&
                         read_optional(value, "from", spec.from, "a list of strings", error) &&
                         read_optional(value, "to", spec.to, "a list of strings", error) &&
                         read_optional(value, "comment", spec.comment, "a string", error) &&
                         read_optional(value, "created", spec.created_unix, "an integer", error);
    if (!read_ok)
        return std::nullopt;

    if (action == "drop")
        spec.action = Action::drop;
    else if (action == "accept")
        spec.action = Action::accept;
    else {
        error = "key \"action\" must be \"accept\" or \"drop\", not \"" + action + "\"";
        return std::nullopt;
    }
    return spec;
}

std::string encode_request(const Request& request)
{
    json value = {
        {"v", protocol_version},
        {"command", std::string(command_name(request.command))},
    };
    if (request.command == Command::block || request.command == Command::allow ||
        request.command == Command::unblock || request.command == Command::insert)
        value["rule"] = rule_spec_to_json(request.rule);
    if (request.position != 0)
        value["position"] = request.position;
    if (!request.target.empty())
        value["target"] = request.target;
    if (request.dry_run)
        value["dry_run"] = true;
    if (request.force)
        value["force"] = true;
    if (request.confirm_seconds != 0)
        value["confirm_seconds"] = request.confirm_seconds;
    if (!request.ssh_connection.empty())
        value["ssh_connection"] = request.ssh_connection;
    return value.dump() + "\n";
}

std::string encode_reply(const Reply& reply)
{
    json value = {{"v", protocol_version}, {"ok", reply.ok}};
    value[reply.ok ? "message" : "error"] = reply.message;
    if (!reply.data.empty())
        value["data"] = reply.data;
    // Replace invalid UTF-8 (a rule file comment, say) instead of throwing.
    return value.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::optional<Request> decode_request(std::string_view line, std::string& error)
{
    const std::optional<json> value = parse_object(line, "request", error);
    if (!value)
        return std::nullopt;
    if (!only_known_keys(*value,
                         {"v", "command", "rule", "position", "target", "dry_run", "force",
                          "confirm_seconds", "ssh_connection"},
                         "request", error))
        return std::nullopt;

    std::string command;
    Request request;
    const bool read_ok =
        read_optional(*value, "command", command, "a string", error) &&
        read_optional(*value, "position", request.position, "an integer 0-4294967295", error) &&
        read_optional(*value, "target", request.target, "a string", error) &&
        read_optional(*value, "dry_run", request.dry_run, "true or false", error) &&
        read_optional(*value, "force", request.force, "true or false", error) &&
        read_optional(*value, "confirm_seconds", request.confirm_seconds, "an integer 0-4294967295",
                      error) &&
        read_optional(*value, "ssh_connection", request.ssh_connection, "a string", error);
    if (!read_ok)
        return std::nullopt;

    const std::optional<Command> parsed = parse_command_name(command);
    if (!parsed) {
        error = "unknown command \"" + command + "\"";
        return std::nullopt;
    }
    request.command = *parsed;

    const auto rule = value->find("rule");
    if (rule != value->end()) {
        std::optional<RuleSpec> spec = rule_spec_from_json(*rule, error);
        if (!spec)
            return std::nullopt;
        request.rule = std::move(*spec);
    }
    return request;
}

std::optional<Reply> decode_reply(std::string_view line, std::string& error)
{
    const std::optional<json> value = parse_object(line, "reply", error);
    if (!value)
        return std::nullopt;

    const auto ok = value->find("ok");
    if (ok == value->end() || !ok->is_boolean()) {
        error = "reply has no boolean \"ok\"";
        return std::nullopt;
    }
    Reply reply;
    reply.ok = ok->get<bool>();
    const char* text_key = reply.ok ? "message" : "error";
    if (!read_optional(*value, text_key, reply.message, "a string", error))
        return std::nullopt;
    const auto data = value->find("data");
    if (data != value->end())
        reply.data = *data;
    return reply;
}

std::string describe_rule_spec(const RuleSpec& spec)
{
    std::string text(action_name(spec.action));
    text += spec.port.empty() ? " any port" : " " + spec.port;

    auto append_list = [&text](const char* word, const std::vector<std::string>& items) {
        if (items.empty())
            return;
        text += word;
        for (std::size_t i = 0; i < items.size(); ++i)
            text += (i == 0 ? "" : ",") + items[i];
    };
    append_list(" from ", spec.from);
    append_list(" to ", spec.to);
    if (!spec.name.empty())
        text += " (name " + spec.name + ")";
    return text;
}

} // namespace portwall::control
