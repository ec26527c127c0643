// Walks the TOML document that toml++ parsed and builds the RuleFile,
// collecting every error with the source position toml++ recorded.
#include "rules/compiler.hpp"

#include "rules/coverage.hpp"
#include "rules/syntax.hpp"

#include <toml++/toml.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <span>
#include <tuple>

namespace portwall {

namespace {

using Severity = Diagnostic::Severity;

constexpr std::array<std::string_view, 5> top_level_keys{"version", "policy", "daemon", "sets",
                                                         "rule"};
constexpr std::array<std::string_view, 1> policy_keys{"input"};
constexpr std::array<std::string_view, 2> daemon_keys{"fail", "admin_ports"};
constexpr std::array<std::string_view, 8> rule_keys{"name", "sport", "dport", "src",
                                                    "dst",  "action", "proto", "comment"};

std::string_view type_name(const toml::node& node) noexcept
{
    switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "a list";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
    }
    return "nothing";
}

std::size_t edit_distance(std::string_view a, std::string_view b)
{
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t substitution = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
            diagonal = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitution});
        }
    }
    return row[b.size()];
}

// ", did you mean 'X'?" for the closest candidate within two edits, else "".
template <typename Names>
std::string suggestion(std::string_view wrong, const Names& candidates)
{
    std::string best;
    std::size_t best_distance = 3;
    for (const auto& candidate : candidates) {
        const std::size_t distance = edit_distance(wrong, candidate);
        if (distance < best_distance) {
            best_distance = distance;
            best = std::string(candidate);
        }
    }
    return best.empty() ? std::string{} : ", did you mean '" + best + "'?";
}

// Ports written as TOML integers; the message matches parse_port's.
Parsed<std::uint16_t> port_from_integer(std::int64_t value)
{
    if (value < 0 || value > 65535) {
        return Parsed<std::uint16_t>::failure("port " + std::to_string(value) +
                                              " is out of range 0-65535");
    }
    return Parsed<std::uint16_t>::success(static_cast<std::uint16_t>(value));
}

enum class SetState : std::uint8_t { unresolved, resolving, resolved, failed };

struct SetEntry {
    const toml::node* value = nullptr;
    SetState state = SetState::unresolved;
    std::vector<Prefix> prefixes;
};

// Keys of the rule being read that other keys depend on.
struct RuleKeys {
    const toml::node* action = nullptr;
    const toml::node* proto = nullptr;
    const toml::node* first_ports = nullptr; // sport or dport, for messages
    std::string_view first_ports_key;
};

class Compiler {
public:
    explicit Compiler(const std::string& source_name) : file_(source_name) {}

    CompileResult run(std::string_view text);

private:
    SourcePosition position(const toml::source_region& region) const;
    Diagnostic& report(Severity severity, const toml::source_region& region, std::string message);
    void error(const toml::source_region& region, std::string message);
    bool check_type(const toml::node& node, bool ok, std::string_view key,
                    std::string_view expected);
    void check_keys(const toml::table& table, std::string_view where,
                    std::span<const std::string_view> known);

    void read_document(const toml::table& document);
    void read_version(const toml::node& node);
    void read_policy(const toml::node* node);
    void read_daemon(const toml::node& node);
    void read_admin_port(const toml::node& item);
    void read_sets(const toml::node& node);
    const std::vector<Prefix>* lookup_set(const std::string& name, const toml::node& reference);
    void resolve_set(const std::string& name, SetEntry& entry);
    void read_rules(const toml::node& node);
    void read_rule(const toml::table& table);
    void read_rule_key(const toml::key& key, const toml::node& value, Rule& rule, RuleKeys& keys);
    void read_rule_name(const toml::node& value, Rule& rule);
    void check_rule_protocols(Rule& rule, const RuleKeys& keys);
    void check_rule_families(const Rule& rule, const toml::table& table);

    // List readers: a single value or a non-empty list of values.
    template <typename ReadItem>
    bool read_list(const toml::node& node, std::string_view key, ReadItem read_item);
    bool read_ports(const toml::node& node, std::string_view key, std::vector<PortRange>& out);
    bool read_protocols(const toml::node& node, Rule& rule);
    bool read_addresses(const toml::node& node, std::string_view key, std::vector<Prefix>& out);

    std::string file_;
    std::vector<Diagnostic> diagnostics_;
    RuleFile result_;
    std::map<std::string, SetEntry, std::less<>> sets_;
    std::vector<std::string> set_chain_; // sets being resolved, outermost first
    std::map<std::string, SourcePosition, std::less<>> rule_names_;
};

SourcePosition Compiler::position(const toml::source_region& region) const
{
    return SourcePosition{file_, region.begin.line, region.begin.column};
}

Diagnostic& Compiler::report(Severity severity, const toml::source_region& region,
                             std::string message)
{
    diagnostics_.push_back(Diagnostic{severity, position(region), std::move(message), {}});
    return diagnostics_.back();
}

void Compiler::error(const toml::source_region& region, std::string message)
{
    report(Severity::error, region, std::move(message));
}

// Report "'KEY' must be EXPECTED, found TYPE" unless `ok`; returns `ok`.
bool Compiler::check_type(const toml::node& node, bool ok, std::string_view key,
                          std::string_view expected)
{
    if (!ok) {
        error(node.source(), "'" + std::string(key) + "' must be " + std::string(expected) +
                                 ", found " + std::string(type_name(node)));
    }
    return ok;
}

void Compiler::check_keys(const toml::table& table, std::string_view where,
                          std::span<const std::string_view> known)
{
    for (auto&& [key, value] : table) {
        if (std::find(known.begin(), known.end(), key.str()) != known.end())
            continue;
        error(key.source(), "unknown key '" + std::string(key.str()) + "' " + std::string(where) +
                                suggestion(key.str(), known));
    }
}

CompileResult Compiler::run(std::string_view text)
{
    try {
        const toml::table document = toml::parse(text, std::string_view{file_});
        read_document(document);
    } catch (const toml::parse_error& parse_error) {
        // toml++ stops at the first syntax error, so nothing after it is checked.
        error(parse_error.source(), "invalid TOML, the file is not checked past this point: " +
                                        std::string(parse_error.description()));
    }

    CompileResult result;
    const auto is_error = [](const Diagnostic& d) { return d.severity == Severity::error; };
    const bool failed = std::any_of(diagnostics_.begin(), diagnostics_.end(), is_error);
    if (!failed) {
        for (auto& [name, entry] : sets_)
            result_.sets.emplace(name, std::move(entry.prefixes));
        for (Diagnostic& warning : find_covered_rules(result_.table))
            diagnostics_.push_back(std::move(warning));
        for (Diagnostic& warning : find_admin_port_bypasses(result_))
            diagnostics_.push_back(std::move(warning));
        result.rules = std::move(result_);
    }

    // toml++ iterates keys in sorted order, so put diagnostics back in file order.
    std::stable_sort(diagnostics_.begin(), diagnostics_.end(),
                     [](const Diagnostic& a, const Diagnostic& b) {
                         return std::tie(a.position.line, a.position.column) <
                                std::tie(b.position.line, b.position.column);
                     });
    result.diagnostics = std::move(diagnostics_);
    return result;
}

void Compiler::read_document(const toml::table& document)
{
    check_keys(document, "at the top level", top_level_keys);
    if (const toml::node* version = document.get("version"))
        read_version(*version);
    read_policy(document.get("policy"));
    if (const toml::node* daemon = document.get("daemon"))
        read_daemon(*daemon);
    // Sets are read before rules because rules refer to them.
    if (const toml::node* sets = document.get("sets"))
        read_sets(*sets);
    if (const toml::node* rules = document.get("rule"))
        read_rules(*rules);
}

void Compiler::read_version(const toml::node& node)
{
    const auto* version = node.as_integer();
    if (!check_type(node, version != nullptr, "version", "an integer"))
        return;
    if (version->get() != 1) {
        error(node.source(), "unsupported format version " + std::to_string(version->get()) +
                                 ", this portwall reads version 1");
    }
}

void Compiler::read_policy(const toml::node* node)
{
    if (node == nullptr) {
        const toml::source_region start{{1, 1}, {1, 1}, nullptr};
        error(start, "missing [policy] table, add one with input = \"accept\" or \"drop\"");
        return;
    }
    const toml::table* policy = node->as_table();
    if (!check_type(*node, policy != nullptr, "policy", "a table"))
        return;
    check_keys(*policy, "in [policy]", policy_keys);

    const toml::node* input = policy->get("input");
    if (input == nullptr) {
        error(node->source(), "[policy] has no 'input', set it to \"accept\" or \"drop\"");
        return;
    }
    const auto* text = input->as_string();
    if (!check_type(*input, text != nullptr, "input", "\"accept\" or \"drop\""))
        return;
    if (text->get() == "accept") {
        result_.table.policy = Action::accept;
    } else if (text->get() == "drop") {
        result_.table.policy = Action::drop;
    } else {
        error(input->source(), "invalid policy '" + text->get() +
                                   "', expected \"accept\" or \"drop\"");
        return;
    }
}

void Compiler::read_daemon(const toml::node& node)
{
    const toml::table* daemon = node.as_table();
    if (!check_type(node, daemon != nullptr, "daemon", "a table"))
        return;
    check_keys(*daemon, "in [daemon]", daemon_keys);

    if (const toml::node* fail = daemon->get("fail")) {
        const auto* text = fail->as_string();
        if (check_type(*fail, text != nullptr, "fail", "\"open\" or \"closed\"")) {
            if (text->get() == "open")
                result_.fail = FailMode::open;
            else if (text->get() == "closed")
                result_.fail = FailMode::closed;
            else
                error(fail->source(), "invalid fail mode '" + text->get() +
                                          "', expected \"open\" or \"closed\"");
        }
    }

    if (const toml::node* ports = daemon->get("admin_ports")) {
        // An empty list is allowed here: it states that no port stays open.
        const toml::array* list = ports->as_array();
        if (check_type(*ports, list != nullptr, "admin_ports", "a list of ports")) {
            for (const toml::node& item : *list)
                read_admin_port(item);
        }
    }
}

void Compiler::read_admin_port(const toml::node& item)
{
    Parsed<std::uint16_t> port = Parsed<std::uint16_t>::failure("");
    if (const auto* number = item.as_integer()) {
        port = port_from_integer(number->get());
    } else if (const auto* text = item.as_string()) {
        port = parse_port(text->get());
    } else {
        check_type(item, false, "admin_ports", "a list of port numbers");
        return;
    }
    if (port.ok())
        result_.admin_ports.push_back(*port.value);
    else
        error(item.source(), port.error);
}

template <typename ReadItem>
bool Compiler::read_list(const toml::node& node, std::string_view key, ReadItem read_item)
{
    const toml::array* list = node.as_array();
    if (list == nullptr)
        return read_item(node);
    if (list->empty()) {
        // In the rule model an empty list means "any", so an empty list in a
        // file is far more likely a mistake than a request for any value.
        error(node.source(), "'" + std::string(key) +
                                 "' is an empty list, list at least one value or remove the key");
        return false;
    }
    bool ok = true;
    for (const toml::node& item : *list)
        ok = read_item(item) && ok;
    return ok;
}

bool Compiler::read_ports(const toml::node& node, std::string_view key, std::vector<PortRange>& out)
{
    return read_list(node, key, [&](const toml::node& item) {
        Parsed<PortRange> range = Parsed<PortRange>::failure("");
        if (const auto* number = item.as_integer()) {
            const auto port = port_from_integer(number->get());
            range = port.ok() ? Parsed<PortRange>::success({*port.value, *port.value})
                              : Parsed<PortRange>::failure(port.error);
        } else if (const auto* text = item.as_string()) {
            range = parse_port_range(text->get());
        } else {
            return check_type(item, false, key, "a port, a \"LOW-HIGH\" string or a list of them");
        }
        if (!range.ok()) {
            error(item.source(), range.error);
            return false;
        }
        out.push_back(*range.value);
        return true;
    });
}

bool Compiler::read_protocols(const toml::node& node, Rule& rule)
{
    rule.any_protocol = false;
    return read_list(node, "proto", [&](const toml::node& item) {
        Parsed<std::uint8_t> protocol = Parsed<std::uint8_t>::failure("");
        if (const auto* number = item.as_integer()) {
            const std::int64_t value = number->get();
            protocol = value >= 0 && value <= 255
                           ? Parsed<std::uint8_t>::success(static_cast<std::uint8_t>(value))
                           : Parsed<std::uint8_t>::failure("protocol number " +
                                                           std::to_string(value) +
                                                           " is out of range 0-255");
        } else if (const auto* text = item.as_string()) {
            protocol = parse_protocol(text->get());
        } else {
            return check_type(item, false, "proto", "a protocol name, a number or a list of them");
        }
        if (!protocol.ok()) {
            error(item.source(), protocol.error);
            return false;
        }
        rule.protocols.set(*protocol.value);
        return true;
    });
}

bool Compiler::read_addresses(const toml::node& node, std::string_view key,
                              std::vector<Prefix>& out)
{
    return read_list(node, key, [&](const toml::node& item) {
        const auto* text = item.as_string();
        const std::string_view expected = "an address, a prefix, \"@set\" or a list of them";
        if (!check_type(item, text != nullptr, key, expected))
            return false;
        const auto term = parse_address_term(text->get());
        if (!term.ok()) {
            error(item.source(), term.error);
            return false;
        }
        if (term.value->prefix) {
            out.push_back(*term.value->prefix);
            return true;
        }
        const std::vector<Prefix>* members = lookup_set(term.value->set_name, item);
        if (members == nullptr)
            return false;
        out.insert(out.end(), members->begin(), members->end());
        return true;
    });
}

void Compiler::read_sets(const toml::node& node)
{
    const toml::table* sets = node.as_table();
    if (!check_type(node, sets != nullptr, "sets", "a table of named address lists"))
        return;
    for (auto&& [key, value] : *sets) {
        const std::string problem = check_name(key.str());
        if (!problem.empty()) {
            error(key.source(), "invalid set name: " + problem);
            continue;
        }
        sets_.emplace(std::string(key.str()), SetEntry{&value, SetState::unresolved, {}});
    }
    // Resolve every set, also those no rule uses, so that their errors show.
    for (auto& [name, entry] : sets_) {
        if (entry.state == SetState::unresolved)
            resolve_set(name, entry);
    }
}

// Return the prefixes of set `name`, or nullptr after reporting why there are none.
const std::vector<Prefix>* Compiler::lookup_set(const std::string& name,
                                                const toml::node& reference)
{
    const auto found = sets_.find(name);
    if (found == sets_.end()) {
        std::vector<std::string_view> names;
        for (const auto& entry : sets_)
            names.push_back(entry.first);
        error(reference.source(), "undefined set '@" + name + "'" + suggestion(name, names));
        return nullptr;
    }

    SetEntry& entry = found->second;
    if (entry.state == SetState::unresolved)
        resolve_set(found->first, entry);
    if (entry.state == SetState::resolving) {
        std::string cycle;
        const auto start = std::find(set_chain_.begin(), set_chain_.end(), name);
        for (auto it = start; it != set_chain_.end(); ++it)
            cycle += "@" + *it + " -> ";
        error(reference.source(), "set '@" + name + "' refers to itself: " + cycle + "@" + name);
        entry.state = SetState::failed;
    }
    return entry.state == SetState::resolved ? &entry.prefixes : nullptr;
}

void Compiler::resolve_set(const std::string& name, SetEntry& entry)
{
    entry.state = SetState::resolving;
    set_chain_.push_back(name);
    std::vector<Prefix> prefixes;
    const bool ok = read_addresses(*entry.value, "sets." + name, prefixes);
    set_chain_.pop_back();

    // A cycle found below has already marked this set failed.
    if (entry.state == SetState::failed)
        return;
    entry.state = ok ? SetState::resolved : SetState::failed;
    entry.prefixes = std::move(prefixes);
}

void Compiler::read_rules(const toml::node& node)
{
    const toml::array* rules = node.as_array();
    if (rules == nullptr || !rules->is_array_of_tables()) {
        error(node.source(), "'rule' must be a list of tables, write each rule as [[rule]]");
        return;
    }
    for (const toml::node& item : *rules)
        read_rule(*item.as_table());
}

void Compiler::read_rule(const toml::table& table)
{
    Rule rule;
    rule.origin.kind = RuleOrigin::Kind::file;
    rule.origin.file = file_;
    rule.origin.line = table.source().begin.line;
    rule.origin.column = table.source().begin.column;

    RuleKeys keys;
    for (auto&& [key, value] : table)
        read_rule_key(key, value, rule, keys);

    if (keys.action == nullptr)
        error(table.source(), "rule has no 'action', set it to \"accept\" or \"drop\"");
    check_rule_protocols(rule, keys);
    check_rule_families(rule, table);
    result_.table.rules.push_back(std::move(rule));
}

void Compiler::read_rule_key(const toml::key& key, const toml::node& value, Rule& rule,
                             RuleKeys& keys)
{
    const std::string_view name = key.str();
    if (name == "name") {
        read_rule_name(value, rule);
    } else if (name == "action") {
        keys.action = &value;
        const auto* text = value.as_string();
        if (!check_type(value, text != nullptr, "action", "\"accept\" or \"drop\""))
            return;
        if (text->get() == "accept")
            rule.action = Action::accept;
        else if (text->get() == "drop")
            rule.action = Action::drop;
        else
            error(value.source(), "invalid action '" + text->get() +
                                      "', expected \"accept\" or \"drop\"");
    } else if (name == "proto") {
        keys.proto = &value;
        read_protocols(value, rule);
    } else if (name == "sport" || name == "dport") {
        // Keys come sorted, so "dport" is seen before "sport" when both exist.
        if (keys.first_ports == nullptr) {
            keys.first_ports = &value;
            keys.first_ports_key = name == "sport" ? "sport" : "dport";
        }
        read_ports(value, name, name == "sport" ? rule.sport : rule.dport);
    } else if (name == "src" || name == "dst") {
        read_addresses(value, name, name == "src" ? rule.src : rule.dst);
    } else if (name == "comment") {
        const auto* text = value.as_string();
        if (check_type(value, text != nullptr, "comment", "a string"))
            rule.comment = text->get();
    } else {
        error(key.source(), "unknown key '" + std::string(name) + "' in [[rule]]" +
                                suggestion(name, rule_keys));
    }
}

void Compiler::read_rule_name(const toml::node& value, Rule& rule)
{
    const auto* text = value.as_string();
    if (!check_type(value, text != nullptr, "name", "a string"))
        return;
    const std::string problem = check_name(text->get());
    if (!problem.empty()) {
        error(value.source(), "invalid rule name: " + problem);
        return;
    }
    const auto [first, inserted] = rule_names_.emplace(text->get(), position(value.source()));
    if (!inserted) {
        Diagnostic& duplicate = report(Severity::error, value.source(),
                                       "duplicate rule name '" + text->get() + "'");
        duplicate.notes.push_back(Diagnostic{Severity::note, first->second,
                                             "'" + text->get() + "' is first used here", {}});
        return;
    }
    rule.name = text->get();
}

// Ports need a protocol that carries them: with no `proto` the rule means
// the port-carrying protocols, and a listed protocol without ports is an error.
void Compiler::check_rule_protocols(Rule& rule, const RuleKeys& keys)
{
    if (!rule.names_ports())
        return;
    if (keys.proto == nullptr) {
        rule.any_protocol = false;
        rule.protocols = port_protocols();
        return;
    }
    for (std::size_t bit = 0; bit < rule.protocols.size(); ++bit) {
        const auto protocol = static_cast<std::uint8_t>(bit);
        if (!rule.protocols.test(bit) || protocol_has_ports(protocol))
            continue;
        error(keys.proto->source(),
              "protocol '" + protocol_name(protocol) +
                  "' has no ports, but the rule sets '" + std::string(keys.first_ports_key) +
                  "', use a separate rule for it");
    }
}

std::optional<Family> only_family(const std::vector<Prefix>& prefixes)
{
    if (prefixes.empty())
        return std::nullopt;
    const Family family = prefixes.front().address.family;
    const bool same = std::all_of(prefixes.begin(), prefixes.end(),
                                  [family](const Prefix& p) { return p.address.family == family; });
    return same ? std::optional<Family>(family) : std::nullopt;
}

// Warn about a rule whose own conditions exclude each other: IPv4-only
// sources with IPv6-only destinations, or ICMP for IPv4 with IPv6 addresses
// (and ICMPv6 with IPv4 addresses).
void Compiler::check_rule_families(const Rule& rule, const toml::table& table)
{
    const auto src = only_family(rule.src);
    const auto dst = only_family(rule.dst);
    const auto family_name = [](Family family) { return family == Family::ipv4 ? "IPv4" : "IPv6"; };
    const std::string rule_name = rule.name.empty()
                                      ? "rule #" + std::to_string(result_.table.rules.size() + 1)
                                      : "rule '" + rule.name + "'";
    if (src && dst && *src != *dst) {
        report(Severity::warning, table.source(),
               rule_name + " can never match because 'src' has only " + family_name(*src) +
                   " addresses and 'dst' only " + family_name(*dst) + " addresses");
        return;
    }

    const std::optional<Family> family = src ? src : dst;
    if (!family || rule.any_protocol)
        return;
    std::bitset<256> icmp_of_other_family;
    icmp_of_other_family.set(*family == Family::ipv4 ? ipproto::icmpv6 : ipproto::icmp);
    if ((rule.protocols & ~icmp_of_other_family).none()) {
        report(Severity::warning, table.source(),
               rule_name + " can never match because it names only " +
                   protocol_name(*family == Family::ipv4 ? ipproto::icmpv6 : ipproto::icmp) +
                   " with " + family_name(*family) + " addresses");
    }
}

} // namespace

CompileResult compile_rules(std::string_view text, const std::string& source_name)
{
    Compiler compiler(source_name);
    CompileResult result = compiler.run(text);
    result.source_text = std::string(text);
    return result;
}

namespace {

// Read at most `limit` + 1 bytes of `path` into `text`, so that a larger file
// is detected without reading all of it. Returns an error message, or an
// empty string on success.
std::string read_bounded(const std::string& path, std::size_t limit, std::string& text)
{
    // O_NONBLOCK: opening a FIFO without a writer must not hang `check`.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return "cannot open the rule file: " + std::string(std::strerror(errno));
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0)
        ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);

    std::string error;
    std::array<char, 65536> buffer{};
    while (text.size() <= limit) {
        const std::size_t to_read = std::min(buffer.size(), limit + 1 - text.size());
        const ssize_t got = ::read(fd, buffer.data(), to_read);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            error = "cannot read the rule file: " + std::string(std::strerror(errno));
            break;
        }
        if (got == 0)
            break;
        text.append(buffer.data(), static_cast<std::size_t>(got));
    }
    ::close(fd);
    if (error.empty() && text.size() > limit) {
        error = "the rule file is larger than the " + std::to_string(limit >> 20) +
                " MiB limit";
    }
    return error;
}

} // namespace

CompileResult compile_rules_file(const std::string& path)
{
    std::string text;
    std::string error = read_bounded(path, max_rule_file_bytes, text);
    if (!error.empty()) {
        CompileResult result;
        const SourcePosition whole_file{path, 0, 0};
        result.diagnostics.push_back(
            Diagnostic{Diagnostic::Severity::error, whole_file, std::move(error), {}});
        return result;
    }
    return compile_rules(text, path);
}

} // namespace portwall
