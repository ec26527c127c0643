#include "control/report.hpp"

#include "queue/nfqueue.hpp"
#include "rules/syntax.hpp"

#include <cstdio>
#include <ctime>

namespace portwall::control {

using nlohmann::json;

namespace {

json protocols_json(const Rule& rule)
{
    if (rule.any_protocol)
        return "any";
    json names = json::array();
    for (std::size_t protocol = 0; protocol < rule.protocols.size(); ++protocol) {
        if (rule.protocols.test(protocol))
            names.push_back(protocol_name(static_cast<std::uint8_t>(protocol)));
    }
    return names;
}

// Return `text` with control characters shown as \xNN. A comment may contain
// escape sequences or newlines, which would otherwise reach the terminal of
// the admin who runs `list` or break the table's lines.
std::string printable(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte != 0x7f) {
            out += c;
            continue;
        }
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
        out += escaped;
    }
    return out;
}

json ports_json(const std::vector<PortRange>& ranges)
{
    json items = json::array();
    for (const PortRange& range : ranges)
        items.push_back(format_port_range(range));
    return items;
}

json prefixes_json(const std::vector<Prefix>& prefixes)
{
    json items = json::array();
    for (const Prefix& prefix : prefixes)
        items.push_back(format_prefix(prefix));
    return items;
}

json origin_json(const RuleOrigin& origin)
{
    if (origin.kind == RuleOrigin::Kind::cli)
        return {{"kind", "cli"}, {"created", origin.created_unix}};
    return {{"kind", "file"}, {"file", origin.file}, {"line", origin.line}};
}

std::string join(const json& items, const char* any)
{
    if (items.is_string())
        return items.get<std::string>();
    if (items.empty())
        return any;
    std::string text;
    for (const json& item : items) {
        if (!text.empty())
            text += ',';
        text += item.get<std::string>();
    }
    return text;
}

std::string format_time(std::int64_t unix_seconds)
{
    const std::time_t time = static_cast<std::time_t>(unix_seconds);
    std::tm utc{};
    gmtime_r(&time, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

std::string origin_text(const json& origin)
{
    if (origin.value("kind", "") == "cli")
        return "cli " + format_time(origin.value("created", std::int64_t{0}));
    return origin.value("file", std::string("?")) + ":" + std::to_string(origin.value("line", 0u));
}

} // namespace

json rules_report(const RuleTable& table, const std::vector<RuleSpec>& cli_rules,
                  const Ruleset* counters)
{
    json rules = json::array();
    for (std::size_t i = 0; i < table.rules.size(); ++i) {
        const Rule& rule = table.rules[i];
        json entry = {
            {"number", i + 1},
            {"name", rule.name},
            {"action", std::string(action_name(rule.action))},
            {"proto", protocols_json(rule)},
            {"sport", ports_json(rule.sport)},
            {"dport", ports_json(rule.dport)},
            {"src", prefixes_json(rule.src)},
            {"dst", prefixes_json(rule.dst)},
            {"comment", rule.comment},
            {"origin", origin_json(rule.origin)},
        };
        if (i < cli_rules.size()) {
            entry["src"] = cli_rules[i].from;
            entry["dst"] = cli_rules[i].to;
        }
        if (counters != nullptr) {
            entry["packets"] = counters->rule_counter(i).packets.load(std::memory_order_relaxed);
            entry["bytes"] = counters->rule_counter(i).bytes.load(std::memory_order_relaxed);
        }
        rules.push_back(std::move(entry));
    }

    json policy = {{"action", std::string(action_name(table.policy))}};
    if (counters != nullptr) {
        policy["packets"] = counters->policy_counter().packets.load(std::memory_order_relaxed);
        policy["bytes"] = counters->policy_counter().bytes.load(std::memory_order_relaxed);
    }
    return {{"rules", rules}, {"cli_rules", cli_rules.size()}, {"policy", policy}};
}

json kernel_queues_report()
{
    std::string error;
    const std::vector<KernelQueueStats> queues = read_all_kernel_queue_stats(error);
    json report = json::object();
    json items = json::array();
    for (const KernelQueueStats& queue : queues) {
        items.push_back({
            {"queue", queue.queue},
            {"peer_portid", queue.port_id},
            {"waiting", queue.waiting},
            {"dropped_queue_full", queue.queue_dropped},
            {"dropped_send_failed", queue.user_dropped},
            {"last_packet_id", queue.last_packet_id},
        });
    }
    report["queues"] = items;
    if (!error.empty())
        report["error"] = error;
    return report;
}

std::string format_rules_report(const json& report)
{
    std::string text;
    char line[512];
    std::snprintf(line, sizeof line, "%4s  %-6s %-14s %-12s %-22s %-22s %12s %14s  %s\n", "num",
                  "action", "proto", "dport", "from", "to", "packets", "bytes", "origin / name");
    text += line;

    const auto cli_rules = report.value("cli_rules", std::size_t{0});
    for (const json& rule : report["rules"]) {
        if (rule["number"].get<std::size_t>() == cli_rules + 1)
            text += "  -- rules from the rule file --\n";
        std::string origin = origin_text(rule["origin"]);
        if (!rule["name"].get<std::string>().empty()) {
            origin += ' ';
            origin += rule["name"].get<std::string>();
        }
        if (!rule["comment"].get<std::string>().empty())
            origin += " # " + rule["comment"].get<std::string>();
        std::string ports = join(rule["dport"], "any");
        if (!rule["sport"].empty())
            ports += " sport " + join(rule["sport"], "any");
        std::snprintf(line, sizeof line, "%4zu  %-6s %-14s %-12s %-22s %-22s %12llu %14llu  %s\n",
                      rule["number"].get<std::size_t>(), rule["action"].get<std::string>().c_str(),
                      join(rule["proto"], "any").c_str(), ports.c_str(),
                      join(rule["src"], "any").c_str(), join(rule["dst"], "any").c_str(),
                      static_cast<unsigned long long>(rule.value("packets", 0ull)),
                      static_cast<unsigned long long>(rule.value("bytes", 0ull)),
                      printable(origin).c_str());
        text += line;
        if (rule.contains("error"))
            text += "        error: " + rule["error"].get<std::string>() + "\n";
    }
    const json& policy = report["policy"];
    std::snprintf(line, sizeof line, "%4s  %-6s %-14s %-12s %-22s %-22s %12llu %14llu  %s\n", "-",
                  policy["action"].get<std::string>().c_str(), "any", "any", "any", "any",
                  static_cast<unsigned long long>(policy.value("packets", 0ull)),
                  static_cast<unsigned long long>(policy.value("bytes", 0ull)),
                  "policy (no rule matched)");
    text += line;
    if (report.contains("error"))
        text += "error: these rules do not build, so the daemon will not start with them: " +
                report["error"].get<std::string>() + "\n";
    return text;
}

std::string format_status_report(const json& report)
{
    std::string text = "portwall is running (pid " + report.value("pid", json(0)).dump() + ")\n";
    auto add = [&text](const char* label, const json& value) {
        if (value.is_null())
            return;
        text += std::string("  ") + label + ": " +
                (value.is_string() ? value.get<std::string>() : value.dump()) + "\n";
    };
    add("uptime seconds", report.value("uptime_seconds", json()));
    add("rules in force", report.value("rules", json()));
    add("rules from the CLI", report.value("cli_rules", json()));
    add("ruleset generation", report.value("generation", json()));
    add("rule file", report.value("rule_file", json()));
    add("state file", report.value("state_file", json()));
    add("change awaiting confirm, seconds left", report.value("confirm_pending_seconds", json()));

    const json daemon = report.value("daemon", json::object());
    for (const auto& item : daemon.items())
        add(item.key().c_str(), item.value());

    const json kernel = report.value("kernel", json::object());
    for (const json& queue : kernel.value("queues", json::array())) {
        text += "  kernel queue " + queue["queue"].dump() + ": waiting " + queue["waiting"].dump() +
                ", dropped (queue full) " + queue["dropped_queue_full"].dump() +
                ", dropped (send to reader failed) " + queue["dropped_send_failed"].dump() + "\n";
    }
    if (kernel.contains("error"))
        add("kernel queues", kernel["error"]);
    return text;
}

} // namespace portwall::control
