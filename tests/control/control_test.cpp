// Unit tests of the control layer that need no root: the protocol parser,
// the state file, the rule store's order, anti-lockout, and the service
// applying requests to a RulesetHolder.
#include "control/lockout.hpp"
#include "control/report.hpp"
#include "control/protocol.hpp"
#include "control/rule_store.hpp"
#include "control/server.hpp"
#include "control/service.hpp"
#include "control/state_file.hpp"
#include "queue/nfqueue.hpp"
#include "rules/compiler.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <cstring>
#include <random>
#include <sys/socket.h>
#include <unistd.h>

using namespace portwall;
using namespace portwall::control;

namespace {

RuleFile compile_ok(const std::string& text)
{
    CompileResult result = compile_rules(text, "test.toml");
    REQUIRE_MESSAGE(result.ok(), "rule text did not compile");
    return std::move(*result.rules);
}

constexpr const char* file_allowing_web = R"(
[policy]
input = "drop"

[[rule]]
name = "ssh"
action = "accept"
proto = "tcp"
dport = 22

[[rule]]
name = "mysql"
action = "accept"
proto = "tcp"
dport = 3306
)";

// A fresh state directory under /tmp, removed at the end of the test.
struct TemporaryDir {
    std::string path;
    TemporaryDir()
    {
        char pattern[] = "/tmp/portwall-control-test-XXXXXX";
        path = ::mkdtemp(pattern);
    }
    ~TemporaryDir() { std::filesystem::remove_all(path); }
};

PacketView tcp_packet(const char* source, const char* destination, std::uint16_t dport)
{
    std::string error;
    const std::string text =
        std::string(source) + " 40000 " + destination + " " + std::to_string(dport);
    std::optional<PacketView> packet = parse_ssh_connection(text, error);
    REQUIRE_MESSAGE(packet, error);
    return *packet;
}

nlohmann::json json_array(std::initializer_list<const char*> items)
{
    nlohmann::json array = nlohmann::json::array();
    for (const char* item : items)
        array.push_back(item);
    return array;
}

Request change(Command command, Action action, const std::string& port,
               std::vector<std::string> from = {})
{
    Request request;
    request.command = command;
    request.rule.action = action;
    request.rule.port = port;
    request.rule.from = std::move(from);
    return request;
}

} // namespace

TEST_CASE("protocol request round trip")
{
    Request request = change(Command::insert, Action::accept, "6000-6100/udp", {"2001:db8::/32"});
    request.position = 2;
    request.dry_run = true;
    request.confirm_seconds = 30;
    request.ssh_connection = "198.18.0.1 50000 198.18.0.2 22";
    request.rule.comment = "video";

    std::string error;
    const std::optional<Request> decoded = decode_request(encode_request(request), error);
    REQUIRE_MESSAGE(decoded, error);
    CHECK(decoded->command == Command::insert);
    CHECK(decoded->rule == request.rule);
    CHECK(decoded->position == 2);
    CHECK(decoded->dry_run);
    CHECK(decoded->confirm_seconds == 30);
    CHECK(decoded->ssh_connection == request.ssh_connection);
}

TEST_CASE("protocol rejects malformed requests")
{
    struct Case {
        const char* line;
        const char* error;
    };
    const Case cases[] = {
        {"", "request is not valid JSON"},
        {"\x01\xff garbage", "request is not valid JSON"},
        {"[1,2]", "request must be a JSON object"},
        {R"({"command":"list"})", "request has no protocol version \"v\""},
        {R"({"v":1e0,"command":"list"})",
         "request has an invalid protocol version 1.0: \"v\" must be the integer 1"},
        {R"({"v":1,"command":"list","command":"status"})",
         "request has key \"command\" twice"},
        {R"({"v":1,"command":"block","rule":{"port":"1/tcp","port":"2/tcp"}})",
         "request has key \"port\" twice"},
        {R"({"v":"1","command":"list"})",
         "request has an invalid protocol version \"1\": \"v\" must be the integer 1"},
        {R"({"v":2,"command":"list"})",
         "request uses protocol version 2; this portwall speaks version 1"},
        {R"({"v":1,"command":"reboot"})", "unknown command \"reboot\""},
        {R"({"v":1,"command":"list","colour":1})", "request has unknown key \"colour\""},
        {R"({"v":1,"command":"block","dry_run":"yes"})",
         "key \"dry_run\" must be true or false, not \"yes\""},
        {R"({"v":1,"command":"insert","position":-1})",
         "key \"position\" must be an integer 0-4294967295, not -1"},
        {R"({"v":1,"command":"block","rule":{"action":"reject"}})",
         "key \"action\" must be \"accept\" or \"drop\", not \"reject\""},
        {R"({"v":1,"command":"block","rule":{"from":["198.18.0.1",5]}})",
         "key \"from\" must be a list of strings, not [\"198.18.0.1\",5]"},
    };
    for (const Case& item : cases) {
        CAPTURE(item.line);
        std::string error;
        CHECK_FALSE(decode_request(item.line, error));
        CHECK(error == item.error);
    }
}

TEST_CASE("protocol survives random bytes")
{
    std::mt19937 random(7);
    for (int round = 0; round < 2000; ++round) {
        std::string line(random() % 200, '\0');
        for (char& byte : line)
            byte = static_cast<char>(random());
        std::string error;
        const std::optional<Request> request = decode_request(line, error);
        CHECK((request.has_value() || !error.empty()));
    }
}

TEST_CASE("protocol reply round trip")
{
    const Reply reply{false, "no rule number 9", nlohmann::json::object()};
    std::string error;
    const std::optional<Reply> decoded = decode_reply(encode_reply(reply), error);
    REQUIRE_MESSAGE(decoded, error);
    CHECK_FALSE(decoded->ok);
    CHECK(decoded->message == "no rule number 9");
}

TEST_CASE("state file round trip")
{
    TemporaryDir dir;
    std::vector<RuleSpec> rules(2);
    rules[0].port = "3306/tcp";
    rules[0].from = {"198.18.0.0/24", "2001:db8::/48"};
    rules[0].comment = "incident \"42\"\nsecond line";
    rules[0].created_unix = 1796400000;
    rules[1].action = Action::accept;
    rules[1].port = "53/udp";
    rules[1].name = "dns";

    std::string error;
    REQUIRE_MESSAGE(save_state(dir.path, rules, error), error);
    const StateLoad loaded = load_state(dir.path);
    CHECK(loaded.ok());
    CHECK(loaded.file_exists);
    CHECK(loaded.rules == rules);
    CHECK(loaded.lines == std::vector<std::uint32_t>{2, 3});
    CHECK_FALSE(std::filesystem::exists(state_file_path(dir.path) + ".tmp"));
}

TEST_CASE("state file missing means no rules")
{
    TemporaryDir dir;
    const StateLoad loaded = load_state(dir.path);
    CHECK(loaded.ok());
    CHECK_FALSE(loaded.file_exists);
    CHECK(loaded.rules.empty());
}

TEST_CASE("state file corruption positions")
{
    struct Case {
        std::string text;
        std::uint32_t line;
        std::uint32_t column;
        std::string message;
    };
    const std::string header = "{\"portwall_state\":1}\n";
    const Case cases[] = {
        {"", 1, 1, "state file is empty; expected the line {\"portwall_state\":1}"},
        {"{\"portwall_state\":2}\n", 1, 1,
         "state format version 2 is not supported; this portwall reads version 1"},
        {"hello\n", 1, 1,
         "invalid JSON: syntax error while parsing value - invalid literal; last read: 'h'"},
        {header + "{\"action\":\"drop\",\"port\":\"22\"}\n{\"action\":\"drop\",\"port\":\"3", 3, 1,
         "last line has no newline: the file is truncated"},
        {header + "{\"action\":\"drop\",\"port\":\"22\",\"colour\":1}\n", 2, 30,
         "rule has unknown key \"colour\""},
        {header + "{\"action\":\"drop\", \"port\": 22}\n", 2, 19,
         "key \"port\" must be a string, not 22"},
        {header + "\n", 2, 1, "empty line"},
    };
    for (const Case& item : cases) {
        CAPTURE(item.text);
        const StateLoad loaded = parse_state(item.text, "state.jsonl");
        REQUIRE_FALSE(loaded.ok());
        CHECK(loaded.diagnostics[0].position.file == "state.jsonl");
        CHECK(loaded.diagnostics[0].position.line == item.line);
        CHECK(loaded.diagnostics[0].position.column == item.column);
        CHECK(loaded.diagnostics[0].message == item.message);
    }
}

TEST_CASE("state file reports every bad line")
{
    const std::string text =
        "{\"portwall_state\":1}\n{\"action\":\"drop\"}\n{bad\n{\"action\":1}\n";
    const StateLoad loaded = parse_state(text, "state.jsonl");
    REQUIRE(loaded.diagnostics.size() == 2);
    CHECK(loaded.diagnostics[0].position.line == 3);
    CHECK(loaded.diagnostics[0].position.column == 2);
    CHECK(loaded.diagnostics[1].position.line == 4);
    CHECK(loaded.rules.size() == 1);
}

TEST_CASE("rule store puts CLI rules before file rules")
{
    RuleStore store;
    store.set_file(compile_ok(file_allowing_web), "test.toml");
    std::vector<RuleSpec> cli(1);
    cli[0].port = "3306/tcp";
    store.set_cli_rules(cli);

    std::string error;
    const std::optional<RuleTable> table = store.build(error);
    REQUIRE_MESSAGE(table, error);
    REQUIRE(table->rules.size() == 3);
    CHECK(table->rules[0].origin.kind == RuleOrigin::Kind::cli);
    CHECK(table->rules[1].name == "ssh");
    CHECK(table->rules[2].name == "mysql");
    CHECK(table->policy == Action::drop);

    // The CLI block wins over the file's allow, for IPv4 and IPv6.
    for (const char* source : {"198.18.0.1", "2001:db8::1"}) {
        CAPTURE(source);
        const char* destination = source[0] == '1' ? "198.18.0.2" : "2001:db8::2";
        std::size_t rule = 0;
        CHECK(judge_packet(*table, tcp_packet(source, destination, 3306), rule) == Action::drop);
        CHECK(rule == 0);
        CHECK(judge_packet(*table, tcp_packet(source, destination, 22), rule) == Action::accept);
        CHECK(rule == 1);
    }
}

TEST_CASE("rule store rejects names used twice")
{
    RuleStore store;
    store.set_file(compile_ok(file_allowing_web), "test.toml");
    std::vector<RuleSpec> cli(1);
    cli[0].port = "80";
    cli[0].name = "ssh";
    store.set_cli_rules(cli);
    std::string error;
    CHECK_FALSE(store.build(error));
    CHECK(error == "CLI rule 1 (drop 80 (name ssh)): name \"ssh\" is also used by a rule in "
                   "test.toml");
}

TEST_CASE("rule spec canonical form and errors")
{
    RuleSpec spec;
    spec.port = "6000-6100/udp";
    spec.from = {"198.18.0.1/32", "2001:db8:0::/32"};
    std::string error;
    const std::optional<RuleSpec> canonical = canonical_rule_spec(spec, error);
    REQUIRE_MESSAGE(canonical, error);
    CHECK(canonical->port == "6000-6100/udp");
    CHECK(canonical->from == std::vector<std::string>{"198.18.0.1", "2001:db8::/32"});

    spec.port = "70000/tcp";
    CHECK_FALSE(canonical_rule_spec(spec, error));
    CHECK(error.find("70000") != std::string::npos);

    spec.port = "22";
    spec.from = {"@admins"};
    std::optional<Rule> rule = resolve_rule_spec(spec, {}, error);
    CHECK_FALSE(rule);
    CHECK(error == "set @admins is not defined in the rule file");

    SetMap sets;
    sets["admins"] = {Prefix{tcp_packet("198.18.0.9", "198.18.0.2", 22).src, 32}};
    rule = resolve_rule_spec(spec, sets, error);
    REQUIRE(rule);
    CHECK(rule->src.size() == 1);
    CHECK(rule->protocols.test(ipproto::udp)); // a port without protocol: all port protocols
}

TEST_CASE("ssh connection parsing")
{
    std::string error;
    std::optional<PacketView> packet =
        parse_ssh_connection("::ffff:198.18.0.1 5000 ::ffff:198.18.0.2 22", error);
    REQUIRE_MESSAGE(packet, error);
    CHECK(packet->family == Family::ipv4);
    CHECK(packet->dport == 22);
    CHECK(packet->sport == 5000);

    CHECK_FALSE(parse_ssh_connection("198.18.0.1 5000", error));
    CHECK(error == "SSH_CONNECTION \"198.18.0.1 5000\" does not have the four fields CLIENT PORT "
                   "SERVER PORT");
    CHECK_FALSE(parse_ssh_connection("198.18.0.1 5000 2001:db8::1 22", error));
}

TEST_CASE("kernel queue counters parsing")
{
    const std::string text = "    0  12345     3 2   512     7     9   100 1\n"
                             "\n"
                             "    1      0     0 2 65531     0     0     0 1\n"
                             "garbage\n"
                             "70000      1     2 2   512     0     0     0 1\n"
                             "    2      1     2\n";
    std::size_t malformed = 0;
    const std::vector<KernelQueueStats> queues = parse_all_kernel_queue_stats(text, malformed);
    REQUIRE(queues.size() == 2);
    CHECK(malformed == 3); // garbage, a queue number above 65535, too few columns
    CHECK(queues[0].queue == 0);
    CHECK(queues[0].port_id == 12345);
    CHECK(queues[0].waiting == 3);
    CHECK(queues[0].queue_dropped == 7);
    CHECK(queues[0].user_dropped == 9);
    CHECK(queues[0].last_packet_id == 100);
    CHECK(queues[1].queue == 1);
    CHECK(queues[1].port_id == 0);

    CHECK(parse_all_kernel_queue_stats("", malformed).empty());
    CHECK(malformed == 0);
}

TEST_CASE("service applies, persists and orders changes")
{
    TemporaryDir dir;
    RulesetHolder holder;
    ControlService service(&holder, dir.path, ClassifierKind::linear);
    std::string error;
    REQUIRE_MESSAGE(
        service.start(compile_ok(file_allowing_web), "test.toml", load_state(dir.path), error),
        error);
    const std::uint64_t first_generation = holder.generation();

    Reply reply = service.handle(change(Command::block, Action::drop, "3306/tcp"));
    CHECK_MESSAGE(reply.ok, reply.message);
    CHECK(holder.generation() == first_generation + 1);
    CHECK(holder.load()->evaluate(tcp_packet("198.18.0.1", "198.18.0.2", 3306)).action ==
          Action::drop);
    CHECK(holder.load()->evaluate(tcp_packet("2001:db8::1", "2001:db8::2", 3306)).action ==
          Action::drop);

    reply = service.handle(change(Command::block, Action::drop, "3306/tcp"));
    CHECK_FALSE(reply.ok);
    CHECK(reply.message == "rule 1 already does this: drop 3306/tcp");

    Request insert = change(Command::insert, Action::accept, "3306/tcp", {"198.18.0.7"});
    insert.position = 1;
    reply = service.handle(insert);
    CHECK_MESSAGE(reply.ok, reply.message);
    CHECK(holder.load()->evaluate(tcp_packet("198.18.0.7", "198.18.0.2", 3306)).action ==
          Action::accept);

    insert.position = 9;
    reply = service.handle(insert);
    CHECK_FALSE(reply.ok);
    CHECK(reply.message.find("position 9 is outside 1-3") == 0);

    const StateLoad saved = load_state(dir.path);
    REQUIRE(saved.rules.size() == 2);
    CHECK(saved.rules[0].action == Action::accept);
    CHECK(saved.rules[1].port == "3306/tcp");

    Request remove;
    remove.command = Command::remove;
    remove.target = "3";
    reply = service.handle(remove);
    CHECK_FALSE(reply.ok);
    CHECK(reply.message ==
          "rule 3 comes from test.toml:5; edit the rule file and reload to change it");

    // "#3", as listings show unnamed rules, is the same position as "3".
    remove.target = "#3";
    reply = service.handle(remove);
    CHECK_FALSE(reply.ok);
    CHECK(reply.message ==
          "rule #3 comes from test.toml:5; edit the rule file and reload to change it");

    reply = service.handle(change(Command::unblock, Action::drop, "3306/tcp"));
    CHECK_MESSAGE(reply.ok, reply.message);
    CHECK(load_state(dir.path).rules.size() == 1);
    CHECK(holder.load()->evaluate(tcp_packet("198.18.0.1", "198.18.0.2", 3306)).action ==
          Action::accept);

    remove.target = "#1";
    reply = service.handle(remove);
    CHECK_MESSAGE(reply.ok, reply.message);
    CHECK(load_state(dir.path).rules.empty());
}

TEST_CASE("service dry run changes nothing")
{
    TemporaryDir dir;
    RulesetHolder holder;
    ControlService service(&holder, dir.path, ClassifierKind::linear);
    std::string error;
    REQUIRE(service.start(compile_ok(file_allowing_web), "test.toml", {}, error));
    const std::uint64_t generation = holder.generation();

    Request request = change(Command::block, Action::drop, "22/tcp");
    request.dry_run = true;
    const Reply reply = service.handle(request);
    CHECK(reply.ok);
    CHECK(reply.message ==
          "dry run, nothing changed: would have added rule 1: drop 22/tcp (3 rules in force)");
    CHECK(holder.generation() == generation);
    CHECK_FALSE(std::filesystem::exists(state_file_path(dir.path)));
}

TEST_CASE("service anti-lockout and confirm rollback")
{
    TemporaryDir dir;
    RulesetHolder holder;
    ControlService service(&holder, dir.path, ClassifierKind::linear);
    std::string error;
    REQUIRE(service.start(compile_ok(file_allowing_web), "test.toml", {}, error));

    for (const char* ssh : {"198.18.0.1 50000 198.18.0.2 22", "2001:db8::1 50000 2001:db8::2 22"}) {
        CAPTURE(ssh);
        Request request = change(Command::block, Action::drop, "22/tcp");
        request.ssh_connection = ssh;
        Reply reply = service.handle(request);
        CHECK_FALSE(reply.ok);
        CHECK(reply.message.find("refused: rule 1 would drop your own SSH connection") == 0);

        // A block of another port leaves the SSH connection alone.
        request.rule.port = "23/tcp";
        reply = service.handle(request);
        CHECK_MESSAGE(reply.ok, reply.message);
        request.command = Command::unblock;
        CHECK(service.handle(request).ok);
    }

    Request request = change(Command::block, Action::drop, "22/tcp");
    request.ssh_connection = "198.18.0.1 50000 198.18.0.2 22";
    request.confirm_seconds = 5;
    Reply reply = service.handle(request);
    CHECK_MESSAGE(reply.ok, reply.message);
    CHECK(service.cli_rule_count() == 1);
    CHECK(load_state(dir.path).rules.empty()); // saved only on confirm

    // Another change waits for the confirmation.
    reply = service.handle(change(Command::block, Action::drop, "25/tcp"));
    CHECK_FALSE(reply.ok);

    service.expire_confirm(ControlService::Clock::now() + std::chrono::seconds(6));
    CHECK(service.cli_rule_count() == 0);
    CHECK(holder.load()->evaluate(tcp_packet("198.18.0.1", "198.18.0.2", 22)).action ==
          Action::accept);

    request.confirm_seconds = 60;
    CHECK(service.handle(request).ok);
    Request confirm;
    confirm.command = Command::confirm;
    reply = service.handle(confirm);
    CHECK_MESSAGE(reply.ok, reply.message);
    service.expire_confirm(ControlService::Clock::now() + std::chrono::seconds(61));
    CHECK(service.cli_rule_count() == 1);
    CHECK(load_state(dir.path).rules.size() == 1);
    CHECK_FALSE(service.handle(confirm).ok);
}

TEST_CASE("service rejects a corrupt state")
{
    TemporaryDir dir;
    std::ofstream(state_file_path(dir.path))
        << "{\"portwall_state\":1}\n{\"action\":\"drop\",\"port\":\"99999\"}\n";
    RulesetHolder holder;
    ControlService service(&holder, dir.path, ClassifierKind::linear);
    std::string error;
    CHECK_FALSE(
        service.start(compile_ok(file_allowing_web), "test.toml", load_state(dir.path), error));
    CHECK(error.find(state_file_path(dir.path) + ":2:1: error: ") == 0);
    CHECK(error.find("99999") != std::string::npos);
    CHECK(holder.load() == nullptr);

    std::ofstream(state_file_path(dir.path)) << "{\"portwall_state\":1}\n{\"action\":\n";
    CHECK_FALSE(
        service.start(compile_ok(file_allowing_web), "test.toml", load_state(dir.path), error));
    CHECK(error.find("state.jsonl:2:") != std::string::npos);
}

TEST_CASE("rule store resolves sets of the rule file")
{
    RuleStore store;
    store.set_file(compile_ok(R"(
[policy]
input = "accept"

[sets]
admins = ["198.18.0.8/29", "2001:db8:8::/48"]
)"),
                   "test.toml");
    std::vector<RuleSpec> cli(1);
    cli[0].port = "22/tcp";
    cli[0].from = {"@admins"};
    cli[0].action = Action::accept;
    store.set_cli_rules(cli);

    std::string error;
    const std::optional<RuleTable> table = store.build(error);
    REQUIRE_MESSAGE(table, error);
    REQUIRE(table->rules.size() == 1);
    CHECK(table->rules[0].src.size() == 2);

    // A reloaded file without the set makes the CLI rule invalid.
    store.set_file(compile_ok("[policy]\ninput = \"accept\"\n"), "test.toml");
    CHECK_FALSE(store.build(error));
    // The message says how to get the daemon going again.
    CHECK(error == "CLI rule 1 (accept 22/tcp from @admins): set @admins is not defined in the "
                   "rule file; restore the set in test.toml or delete this CLI rule");
}

constexpr const char* file_with_admins = R"(
[policy]
input = "accept"

[sets]
admins = ["198.18.0.8/29", "2001:db8:8::/48"]
)";

// Saves `rules` as the state, as `portwall allow ... --offline` would.
void save_rules(const std::string& dir, const std::vector<RuleSpec>& rules)
{
    std::string error;
    REQUIRE_MESSAGE(save_state(dir, rules, error), error);
}

RuleSpec spec(Action action, const std::string& port, std::vector<std::string> from,
              const std::string& name = "")
{
    RuleSpec rule;
    rule.action = action;
    rule.port = port;
    rule.from = std::move(from);
    rule.name = name;
    return rule;
}

TEST_CASE("missing set start error names the repair")
{
    TemporaryDir dir;
    save_rules(dir.path, {spec(Action::drop, "25/tcp", {}),
                          spec(Action::accept, "22/tcp", {"@admins"})});
    const std::string rules_file = std::filesystem::current_path() / "test.toml";

    RulesetHolder holder;
    ControlService daemon(&holder, dir.path, ClassifierKind::linear);
    std::string error;
    CHECK_FALSE(daemon.start(compile_ok("[policy]\ninput = \"accept\"\n"), "test.toml",
                             load_state(dir.path), error));
    CHECK(holder.load() == nullptr);
    // The state file's line 3 contains CLI rule 2, after the header and rule 1.
    CHECK(error == state_file_path(dir.path) +
                       ":3:1: error: CLI rule 2 (accept 22/tcp from @admins): set @admins is not "
                       "defined in the rule file (" + rules_file + ")\n"
                       "portwall will not start with this rule changed or left out\n"
                       "restore the set in " + rules_file + ", or remove the rule with:\n"
                       "  portwall delete 2 --offline --state-dir " + dir.path + " --rules " +
                       rules_file);

    // Every such rule is named, and the removals run from the last one back,
    // so that deleting by number does not shift the numbers still to come.
    save_rules(dir.path, {spec(Action::accept, "22/tcp", {"@admins"}),
                          spec(Action::drop, "25/tcp", {}),
                          spec(Action::accept, "23/tcp", {"@ops"})});
    CHECK_FALSE(daemon.start(compile_ok("[policy]\ninput = \"accept\"\n"), "test.toml",
                             load_state(dir.path), error));
    CHECK(error.find(":2:1: error: CLI rule 1 (accept 22/tcp from @admins): set @admins") !=
          std::string::npos);
    CHECK(error.find(":4:1: error: CLI rule 3 (accept 23/tcp from @ops): set @ops") !=
          std::string::npos);
    CHECK(error.find("remove the rules with:\n  portwall delete 3 --offline") !=
          std::string::npos);
    CHECK(error.find("\n  portwall delete 1 --offline") > error.find("portwall delete 3"));

    // A named rule is removed by its name, which later deletions do not shift.
    save_rules(dir.path, {spec(Action::accept, "22/tcp", {"@admins"}, "admin-ssh")});
    CHECK_FALSE(daemon.start(compile_ok("[policy]\ninput = \"accept\"\n"), "test.toml",
                             load_state(dir.path), error));
    CHECK(error.find("\n  portwall delete admin-ssh --offline --state-dir ") != std::string::npos);

    // A path with a space is quoted, so the command can be pasted into a shell.
    CHECK_FALSE(daemon.start(compile_ok("[policy]\ninput = \"accept\"\n"), "my rules.toml",
                             load_state(dir.path), error));
    const std::string quoted =
        " --rules '" + (std::filesystem::current_path() / "my rules.toml").string() + "'";
    CHECK(error.ends_with(quoted));
}

TEST_CASE("offline delete repairs a missing set")
{
    TemporaryDir dir;
    save_rules(dir.path, {spec(Action::drop, "25/tcp", {}),
                          spec(Action::accept, "22/tcp", {"@admins"}),
                          spec(Action::drop, "23/tcp", {"@admins", "198.18.0.9"})});
    const char* without_set = "[policy]\ninput = \"accept\"\n";

    ControlService offline(nullptr, dir.path, ClassifierKind::linear);
    std::string error;
    REQUIRE_MESSAGE(offline.start_offline(compile_ok(without_set), "test.toml",
                                          load_state(dir.path), error),
                    error);

    // The listing shows every saved rule and which ones lack their set.
    Request list;
    list.command = Command::list;
    Reply reply = offline.handle(list);
    REQUIRE_MESSAGE(reply.ok, reply.message);
    REQUIRE(reply.data["rules"].size() == 3);
    CHECK_FALSE(reply.data["rules"][0].contains("error"));
    CHECK(reply.data["rules"][1]["error"] == "set @admins is not defined in the rule file");
    CHECK(reply.data["rules"][1]["src"] == json_array({"@admins"}));
    CHECK(reply.data["rules"][2]["error"] == "set @admins is not defined in the rule file");
    CHECK(format_rules_report(reply.data).find(
              "        error: set @admins is not defined in the rule file\n") !=
          std::string::npos);

    // Adding a rule still needs every rule to build.
    reply = offline.handle(change(Command::block, Action::drop, "80/tcp"));
    CHECK_FALSE(reply.ok);
    CHECK(reply.message.find("CLI rule 2 (accept 22/tcp from @admins): set @admins") == 0);
    CHECK(load_state(dir.path).rules.size() == 3);

    Request remove;
    remove.command = Command::remove;
    remove.target = "2";
    remove.dry_run = true;
    reply = offline.handle(remove);
    CHECK_MESSAGE(reply.ok, reply.message);
    CHECK(load_state(dir.path).rules.size() == 3);

    remove.dry_run = false;
    reply = offline.handle(remove);
    CHECK_MESSAGE(reply.ok, reply.message);
    CHECK(reply.message.find("deleted rule 2: accept 22/tcp from @admins; the saved rules still "
                             "do not build: CLI rule 2 (drop 23/tcp from @admins,198.18.0.9)") ==
          0);
    REQUIRE(load_state(dir.path).rules.size() == 2);

    // unblock takes the other broken rule by its match.
    reply = offline.handle(change(Command::unblock, Action::drop, "23/tcp",
                                  {"@admins", "198.18.0.9"}));
    CHECK_MESSAGE(reply.ok, reply.message);
    CHECK(reply.message == "removed 1 CLI rule(s): drop 23/tcp from @admins,198.18.0.9");
    const StateLoad repaired = load_state(dir.path);
    REQUIRE(repaired.rules.size() == 1);
    CHECK(repaired.rules[0].port == "25/tcp");

    // The repaired state starts the daemon.
    RulesetHolder holder;
    ControlService daemon(&holder, dir.path, ClassifierKind::linear);
    CHECK_MESSAGE(daemon.start(compile_ok(without_set), "test.toml", repaired, error), error);
    CHECK(holder.load()->evaluate(tcp_packet("198.18.0.1", "198.18.0.2", 25)).action ==
          Action::drop);
    CHECK(holder.load()->evaluate(tcp_packet("2001:db8::1", "2001:db8::2", 25)).action ==
          Action::drop);
}

TEST_CASE("offline start with sets builds normally")
{
    TemporaryDir dir;
    save_rules(dir.path, {spec(Action::accept, "22/tcp", {"@admins"})});
    ControlService offline(nullptr, dir.path, ClassifierKind::linear);
    std::string error;
    REQUIRE(offline.start_offline(compile_ok(file_with_admins), "test.toml", load_state(dir.path),
                                  error));
    Request list;
    list.command = Command::list;
    const Reply reply = offline.handle(list);
    REQUIRE(reply.ok);
    CHECK_FALSE(reply.data.contains("error"));
    CHECK_FALSE(reply.data["rules"][0].contains("error"));
    CHECK(offline.handle(change(Command::block, Action::drop, "80/tcp")).ok);

    RulesetHolder holder;
    ControlService daemon(&holder, dir.path, ClassifierKind::linear);
    CHECK_FALSE(daemon.start_offline(compile_ok(file_with_admins), "test.toml",
                                     load_state(dir.path), error));
}

TEST_CASE("service keeps counters of unnamed rules across changes")
{
    TemporaryDir dir;
    RulesetHolder holder;
    ControlService service(&holder, dir.path, ClassifierKind::linear);
    std::string error;
    REQUIRE(service.start(compile_ok(R"(
[policy]
input = "accept"

[[rule]]
action = "accept"
proto = "tcp"
dport = 22
)"),
                          "test.toml", {}, error));
    REQUIRE(service.handle(change(Command::block, Action::drop, "3306/tcp")).ok);

    const PacketView ssh = tcp_packet("2001:db8::1", "2001:db8::2", 22);
    const PacketView mysql = tcp_packet("198.18.0.1", "198.18.0.2", 3306);
    holder.load()->evaluate(ssh);
    holder.load()->evaluate(mysql);
    holder.load()->evaluate(mysql);

    // A new first rule shifts both old rules down by one.
    Request insert = change(Command::insert, Action::drop, "25/tcp");
    insert.position = 1;
    REQUIRE(service.handle(insert).ok);
    const std::shared_ptr<const Ruleset> ruleset = holder.load();
    CHECK(ruleset->rule_counter(0).packets == 0);
    CHECK(ruleset->rule_counter(1).packets == 2); // drop 3306/tcp
    CHECK(ruleset->rule_counter(2).packets == 1); // the file's accept 22
    CHECK(ruleset->rule_counter(2).bytes == 60);
}

TEST_CASE("peer credentials allowed by group")
{
    const std::vector<gid_t> none;
    const std::vector<gid_t> with_group = {100, 4242};
    CHECK(peer_allowed(0, 0, none, std::nullopt));
    CHECK_FALSE(peer_allowed(65534, 65534, none, std::nullopt));
    CHECK_FALSE(peer_allowed(65534, 65534, with_group, std::nullopt));
    CHECK(peer_allowed(65534, 4242, none, gid_t{4242}));
    CHECK(peer_allowed(65534, 65534, with_group, gid_t{4242}));
    CHECK_FALSE(peer_allowed(65534, 65534, none, gid_t{4242}));
    CHECK_FALSE(peer_allowed(65534, 65534, {100, 4243}, gid_t{4242}));
}

TEST_CASE("peer groups match getgroups")
{
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    int error_number = 0;
    const std::optional<std::vector<gid_t>> peer = read_peer_groups(fds[0], error_number);
    ::close(fds[0]);
    ::close(fds[1]);
    REQUIRE_MESSAGE(peer, "SO_PEERGROUPS failed: ", std::strerror(error_number));

    // Both ends belong to this process, so the peer's groups are its own.
    std::vector<gid_t> own(static_cast<std::size_t>(::getgroups(0, nullptr)));
    REQUIRE(::getgroups(static_cast<int>(own.size()), own.data()) == static_cast<int>(own.size()));
    std::vector<gid_t> sorted_peer = *peer;
    std::sort(sorted_peer.begin(), sorted_peer.end());
    std::sort(own.begin(), own.end());
    CHECK(sorted_peer == own);
}

TEST_CASE("control group by name or gid")
{
    std::string error;
    CHECK(lookup_group("4242", error) == gid_t{4242});
    CHECK(lookup_group("0", error) == gid_t{0});
    CHECK(lookup_group("root", error) == gid_t{0});
    CHECK_FALSE(lookup_group("portwall-no-such-group", error));
    CHECK(error == "control group \"portwall-no-such-group\" not found; give an existing group "
                   "name or a numeric gid");
}

TEST_CASE("service caps the CLI rule count")
{
    TemporaryDir dir;
    std::vector<RuleSpec> full;
    for (std::size_t i = 0; i < max_cli_rules; ++i) {
        const std::uint32_t address = 0xC6120000u + static_cast<std::uint32_t>(i); // 198.18.x.y
        full.push_back(spec(Action::drop, std::to_string(1000 + i % 60000),
                            {std::to_string(address >> 24) + "." +
                             std::to_string((address >> 16) & 0xFF) + "." +
                             std::to_string((address >> 8) & 0xFF) + "." +
                             std::to_string(address & 0xFF)}));
    }
    full.pop_back();
    save_rules(dir.path, full);

    RulesetHolder holder;
    ControlService service(&holder, dir.path, ClassifierKind::linear);
    std::string error;
    REQUIRE_MESSAGE(service.start(compile_ok(file_allowing_web), "test.toml",
                                  load_state(dir.path), error),
                    error);
    REQUIRE(service.cli_rule_count() == max_cli_rules - 1);

    // The last rule up to the limit is accepted.
    Reply reply = service.handle(change(Command::block, Action::drop, "80/tcp"));
    REQUIRE_MESSAGE(reply.ok, reply.message);
    CHECK(service.cli_rule_count() == max_cli_rules);

    const std::uint64_t generation = holder.generation();
    for (const Command command : {Command::block, Command::allow, Command::insert}) {
        CAPTURE(command_name(command));
        Request request = change(command, Action::drop, "81/tcp");
        request.position = 1;
        reply = service.handle(request);
        CHECK_FALSE(reply.ok);
        CHECK(reply.message == "rejected: there are 10000 CLI rules and the limit is 10000; "
                               "delete CLI rules (`portwall delete`) or move them into the rule "
                               "file");
    }
    CHECK(holder.generation() == generation);
    CHECK(load_state(dir.path).rules.size() == max_cli_rules);
    CHECK(holder.load()->evaluate(tcp_packet("198.18.0.1", "198.18.0.2", 81)).action ==
          Action::drop); // the file's policy, not a rejected rule

    // Removing a rule always works and makes room again.
    reply = service.handle(change(Command::unblock, Action::drop, "80/tcp"));
    CHECK_MESSAGE(reply.ok, reply.message);
    Request allow = change(Command::allow, Action::accept, "81/tcp");
    reply = service.handle(allow);
    CHECK_MESSAGE(reply.ok, reply.message);
    CHECK(holder.load()->evaluate(tcp_packet("198.18.0.1", "198.18.0.2", 81)).action ==
          Action::accept);
    CHECK(holder.load()->evaluate(tcp_packet("2001:db8::1", "2001:db8::2", 81)).action ==
          Action::accept);
}

TEST_CASE("list escapes control characters in comments")
{
    TemporaryDir dir;
    RuleSpec rule = spec(Action::drop, "7001/tcp", {});
    rule.comment = "a\x1b[31mred\nnext\x7f";
    save_rules(dir.path, {rule});

    ControlService service(nullptr, dir.path, ClassifierKind::linear);
    std::string error;
    REQUIRE_MESSAGE(service.start_offline(compile_ok("[policy]\ninput = \"accept\"\n"),
                                          "test.toml", load_state(dir.path), error),
                    error);
    Request list;
    list.command = Command::list;
    const Reply reply = service.handle(list);
    REQUIRE_MESSAGE(reply.ok, reply.message);

    // JSON escapes them by itself; the table shows them as \xNN on one line.
    CHECK(reply.data["rules"][0]["comment"] == rule.comment);
    const std::string text = format_rules_report(reply.data);
    CHECK(text.find('\x1b') == std::string::npos);
    CHECK(text.find('\x7f') == std::string::npos);
    CHECK(text.find("# a\\x1b[31mred\\x0anext\\x7f\n") != std::string::npos);
}
