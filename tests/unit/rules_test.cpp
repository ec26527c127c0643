// The rules compiler: tables built from TOML, every error with its position
// and message, shadowing warnings, and the text parsers the CLI shares.
#include "rules/compiler.hpp"
#include "rules/syntax.hpp"

#include <doctest/doctest.h>

#include <ostream> // doctest prints std::bitset through operator<<
#include <string>
#include <string_view>

using namespace portwall;

namespace {

// Every rule file in these tests starts with these two lines, so the first
// line of a test's own text is line 3.
const std::string policy_drop = "[policy]\ninput = \"drop\"\n";

CompileResult compile(const std::string& text)
{
    return compile_rules(text, "test.toml");
}

// All diagnostics, one per line, as "LINE:COLUMN: SEVERITY: MESSAGE" (notes
// indented), so that a failed check shows every message at once.
std::string summary(const CompileResult& result)
{
    std::string out;
    const auto add = [&out](const Diagnostic& diagnostic, std::string_view indent) {
        const char* severity = diagnostic.severity == Diagnostic::Severity::error     ? "error"
                               : diagnostic.severity == Diagnostic::Severity::warning ? "warning"
                                                                                      : "note";
        out += std::string(indent) + std::to_string(diagnostic.position.line) + ":" +
               std::to_string(diagnostic.position.column) + ": " + severity + ": " +
               diagnostic.message + "\n";
    };
    for (const Diagnostic& diagnostic : result.diagnostics) {
        add(diagnostic, "");
        for (const Diagnostic& note : diagnostic.notes)
            add(note, "  ");
    }
    return out;
}

// The diagnostics of a file that is `policy_drop` followed by `body`.
std::string errors_of(const std::string& body)
{
    const CompileResult result = compile(policy_drop + body);
    CHECK_FALSE(result.ok());
    return summary(result);
}

Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d)
{
    Address address;
    address.bytes = {a, b, c, d};
    return address;
}

Address v6(std::string_view text)
{
    return *parse_address(text).value;
}

PacketView tcp_packet(Address src, Address dst, std::uint16_t dport)
{
    PacketView view;
    view.status = DecodeStatus::ok;
    view.family = src.family;
    view.protocol = ipproto::tcp;
    view.src = src;
    view.dst = dst;
    view.ports = PortsAbsence::present;
    view.sport = 40000;
    view.dport = dport;
    return view;
}

} // namespace

TEST_CASE("rules: valid file builds rules in file order")
{
    const CompileResult result = compile(R"(version = 1
[policy]
input = "drop"

[daemon]
fail = "closed"
admin_ports = [22, "2222"]

[[rule]]
name = "ssh"
action = "accept"
dport = 22

[[rule]]
action = "drop"
proto = ["udp", 132, "icmpv6"]
comment = "no udp"
)");
    REQUIRE(summary(result) == "");
    REQUIRE(result.ok());
    const RuleFile& file = *result.rules;
    CHECK(file.table.policy == Action::drop);
    REQUIRE(file.fail.has_value());
    CHECK(*file.fail == FailMode::closed);
    CHECK(file.admin_ports == std::vector<std::uint16_t>{22, 2222});
    REQUIRE(file.table.rules.size() == 2);

    const Rule& ssh = file.table.rules[0];
    CHECK(ssh.name == "ssh");
    CHECK(ssh.action == Action::accept);
    CHECK_FALSE(ssh.any_protocol);
    CHECK(ssh.protocols == port_protocols());
    CHECK(ssh.dport == std::vector<PortRange>{{22, 22}});
    CHECK(ssh.origin.file == "test.toml");
    CHECK(ssh.origin.line == 9);
    CHECK(ssh.origin.column == 1);

    const Rule& second = file.table.rules[1];
    CHECK(second.name.empty());
    CHECK(second.action == Action::drop);
    CHECK(second.protocols.count() == 3);
    CHECK(second.protocols.test(ipproto::udp));
    CHECK(second.protocols.test(ipproto::sctp));
    CHECK(second.protocols.test(ipproto::icmpv6));
    CHECK(second.comment == "no udp");
    CHECK(second.origin.line == 14);
}

TEST_CASE("rules: first matching rule decides for IPv4 and IPv6")
{
    const CompileResult result = compile(policy_drop + R"(
[[rule]]
name = "block-one"
action = "drop"
dport = 443
src = ["198.18.0.66", "2001:db8::66"]

[[rule]]
name = "web"
action = "accept"
dport = [80, 443]
)");
    REQUIRE(result.ok());
    const RuleTable& table = result.rules->table;
    const Address server4 = v4(198, 18, 0, 1);
    const Address server6 = v6("2001:db8::1");

    CHECK(rule_matches(table.rules[0], tcp_packet(v4(198, 18, 0, 66), server4, 443)));
    CHECK(rule_matches(table.rules[0], tcp_packet(v6("2001:db8::66"), server6, 443)));
    CHECK_FALSE(rule_matches(table.rules[0], tcp_packet(v4(198, 18, 0, 67), server4, 443)));
    CHECK_FALSE(rule_matches(table.rules[0], tcp_packet(v6("2001:db8::67"), server6, 443)));
    CHECK(rule_matches(table.rules[1], tcp_packet(v6("2001:db8::67"), server6, 80)));
    CHECK_FALSE(rule_matches(table.rules[1], tcp_packet(v4(198, 18, 0, 67), server4, 8080)));
}

TEST_CASE("rules: ports 0 and 65535 and ranges")
{
    const CompileResult result = compile(policy_drop + R"(
[[rule]]
action = "accept"
sport = 0
dport = [65535, "0-10", "100-100"]
)");
    REQUIRE(summary(result) == "");
    const Rule& rule = result.rules->table.rules[0];
    CHECK(rule.sport == std::vector<PortRange>{{0, 0}});
    CHECK(rule.dport == std::vector<PortRange>{{65535, 65535}, {0, 10}, {100, 100}});
}

TEST_CASE("rules: port errors")
{
    CHECK(errors_of(R"([[rule]]
action = "accept"
dport = [65536, -1, "70000", "90-80", "8o", 1.5, "1-"]
)") == "5:10: error: port 65536 is out of range 0-65535\n"
       "5:17: error: port -1 is out of range 0-65535\n"
       "5:21: error: port 70000 is out of range 0-65535\n"
       "5:30: error: port range '90-80' has its low end above its high end\n"
       "5:39: error: invalid port '8o': expected a number 0-65535\n"
       "5:45: error: 'dport' must be a port, a \"LOW-HIGH\" string or a list of them, "
       "found a floating-point number\n"
       "5:50: error: invalid port '': expected a number 0-65535 in range '1-'\n");
}

TEST_CASE("rules: protocol errors")
{
    CHECK(errors_of(R"([[rule]]
action = "accept"
proto = ["tcpp", 256, true]
)") == "5:10: error: unknown protocol 'tcpp': expected tcp, udp, udplite, sctp, icmp, "
       "icmpv6 or a number 0-255\n"
       "5:18: error: protocol number 256 is out of range 0-255\n"
       "5:23: error: 'proto' must be a protocol name, a number or a list of them, found a "
       "boolean\n");
}

TEST_CASE("rules: ports with a protocol that has none")
{
    CHECK(errors_of(R"([[rule]]
action = "accept"
proto = ["tcp", "icmp", 47]
sport = 1024
)") == "5:9: error: protocol 'icmp' has no ports, but the rule sets 'sport', use a separate "
       "rule for it\n"
       "5:9: error: protocol '47' has no ports, but the rule sets 'sport', use a separate "
       "rule for it\n");
}

TEST_CASE("rules: address and prefix errors for IPv4 and IPv6")
{
    CHECK(errors_of(R"([[rule]]
action = "accept"
src = ["198.18.0.1/15", "2001:db8::1/32", "198.18.0.0/33", "2001:db8::/129"]
dst = ["198.18.0.256", "2001:db8:::1", "198.18.0.0/x"]
)") == "5:8: error: prefix '198.18.0.1/15' has host bits set, did you mean '198.18.0.0/15'?\n"
       "5:25: error: prefix '2001:db8::1/32' has host bits set, did you mean '2001:db8::/32'?\n"
       "5:43: error: prefix length '33' is out of range 0-32 for IPv4 in '198.18.0.0/33'\n"
       "5:60: error: prefix length '129' is out of range 0-128 for IPv6 in '2001:db8::/129'\n"
       "6:8: error: invalid address '198.18.0.256': expected an IPv4 or IPv6 address\n"
       "6:24: error: invalid address '2001:db8:::1': expected an IPv4 or IPv6 address\n"
       "6:40: error: invalid prefix length 'x' in '198.18.0.0/x': expected a number 0-32\n");
}

TEST_CASE("rules: unknown keys suggest the nearest key")
{
    CHECK(summary(compile(R"(polcy = 1
)" + policy_drop + R"(inptu = "drop"
[daemon]
fial = "open"
[[rule]]
action = "accept"
dports = 80
colour = "red"
)")) == "1:1: error: unknown key 'polcy' at the top level, did you mean 'policy'?\n"
       "4:1: error: unknown key 'inptu' in [policy], did you mean 'input'?\n"
       "6:1: error: unknown key 'fial' in [daemon], did you mean 'fail'?\n"
       "9:1: error: unknown key 'dports' in [[rule]], did you mean 'dport'?\n"
       "10:1: error: unknown key 'colour' in [[rule]]\n");
}

TEST_CASE("rules: wrong types and invalid values")
{
    CHECK(summary(compile(R"(version = "1"
)" + policy_drop + R"([daemon]
fail = "half"
admin_ports = 22
[[rule]]
name = 7
action = "allow"
comment = ["a"]
src = 198
)")) == "1:11: error: 'version' must be an integer, found a string\n"
       "5:8: error: invalid fail mode 'half', expected \"open\" or \"closed\"\n"
       "6:15: error: 'admin_ports' must be a list of ports, found an integer\n"
       "8:8: error: 'name' must be a string, found an integer\n"
       "9:10: error: invalid action 'allow', expected \"accept\" or \"drop\"\n"
       "10:11: error: 'comment' must be a string, found a list\n"
       "11:7: error: 'src' must be an address, a prefix, \"@set\" or a list of them, found "
       "an integer\n");
}

TEST_CASE("rules: version and policy")
{
    CHECK(summary(compile("version = 2\n" + policy_drop)) ==
          "1:11: error: unsupported format version 2, this portwall reads version 1\n");
    CHECK(summary(compile("")) ==
          "1:1: error: missing [policy] table, add one with input = \"accept\" or \"drop\"\n");
    CHECK(summary(compile("[policy]\n")) ==
          "1:1: error: [policy] has no 'input', set it to \"accept\" or \"drop\"\n");
    CHECK(summary(compile("[policy]\ninput = \"reject\"\noutput = \"drop\"\n")) ==
          "2:9: error: invalid policy 'reject', expected \"accept\" or \"drop\"\n"
          "3:1: error: unknown key 'output' in [policy]\n");

    const CompileResult accept = compile("[policy]\ninput = \"accept\"\n");
    REQUIRE(accept.ok());
    CHECK(accept.rules->table.policy == Action::accept);
    CHECK(accept.rules->table.rules.empty());
    CHECK_FALSE(accept.rules->fail.has_value());
    CHECK(accept.rules->admin_ports.empty());
}

TEST_CASE("rules: names must be valid and unique")
{
    CHECK(errors_of(R"([[rule]]
name = "web"
action = "accept"
[[rule]]
name = "web"
action = "drop"
[[rule]]
name = "12"
action = "drop"
[[rule]]
name = "a b"
action = "drop"
)") == "7:8: error: duplicate rule name 'web'\n"
       "  4:8: note: 'web' is first used here\n"
       "10:8: error: invalid rule name: name '12' is all digits, which the command line "
       "reads as a rule position\n"
       "13:8: error: invalid rule name: name 'a b' contains a character other than letters, "
       "digits, '_', '.' and '-'\n");
}

TEST_CASE("rules: the name 'policy' is reserved")
{
    // Expect files and reports say "policy" for the policy verdict.
    CHECK(errors_of(R"([[rule]]
name = "policy"
action = "accept"
dport = 80
)") == "4:8: error: invalid rule name: name 'policy' is reserved for the policy verdict\n");
    // Only the exact name collides.
    CHECK(compile(policy_drop + "[[rule]]\nname = \"policy-web\"\naction = \"accept\"\n").ok());
}

TEST_CASE("rules: missing action and empty lists")
{
    CHECK(errors_of(R"([[rule]]
dport = []
src = []
)") == "3:1: error: rule has no 'action', set it to \"accept\" or \"drop\"\n"
       "4:9: error: 'dport' is an empty list, list at least one value or remove the key\n"
       "5:7: error: 'src' is an empty list, list at least one value or remove the key\n");
}

TEST_CASE("rules: rule must be an array of tables")
{
    CHECK(errors_of("[rule]\naction = \"accept\"\n") ==
          "3:1: error: 'rule' must be a list of tables, write each rule as [[rule]]\n");
}

TEST_CASE("rules: sets expand, nest and are checked")
{
    const CompileResult result = compile(policy_drop + R"(
[sets]
admins = ["198.18.5.0/24", "2001:db8:5::/48"]
bastions = ["198.18.9.9", "@admins"]

[[rule]]
action = "accept"
dport = 22
src = ["@bastions", "198.18.7.7"]
)");
    REQUIRE(summary(result) == "");
    const Rule& rule = result.rules->table.rules[0];
    REQUIRE(rule.src.size() == 4);
    CHECK(rule.src[0] == *parse_prefix("198.18.9.9").value);
    CHECK(rule.src[1] == *parse_prefix("198.18.5.0/24").value);
    CHECK(rule.src[2] == *parse_prefix("2001:db8:5::/48").value);
    CHECK(rule.src[3] == *parse_prefix("198.18.7.7/32").value);

    const auto& sets = result.rules->sets;
    REQUIRE(sets.size() == 2);
    CHECK(sets.at("admins").size() == 2);
    REQUIRE(sets.at("bastions").size() == 3);
    CHECK(sets.at("bastions")[2] == *parse_prefix("2001:db8:5::/48").value);
}

TEST_CASE("rules: set errors")
{
    CHECK(errors_of(R"([sets]
ring-a = ["@ring-b"]
ring-b = ["@ring-a"]
empty = []
"bad name" = ["198.18.0.0/15"]
admins = ["198.18.0.0/15"]
[[rule]]
action = "accept"
src = ["@admin", "@nobody"]
)") == "5:11: error: set '@ring-a' refers to itself: @ring-a -> @ring-b -> @ring-a\n"
       "6:9: error: 'sets.empty' is an empty list, list at least one value or remove the key\n"
       "7:1: error: invalid set name: name 'bad name' contains a character other than "
       "letters, digits, '_', '.' and '-'\n"
       "11:8: error: undefined set '@admin', did you mean 'admins'?\n"
       "11:18: error: undefined set '@nobody'\n");
}

TEST_CASE("rules: all errors of a file, none of its table")
{
    const CompileResult result = compile(R"([policy]
input = "drop"
[[rule]]
action = "accept"
dport = 70000
[[rule]]
action = "accept"
src = "198.18.0.1/15"
[[rule]]
action = "maybe"
)");
    CHECK_FALSE(result.ok());
    CHECK(result.error_count() == 3);
    CHECK(result.diagnostics.size() == 3);
    CHECK(result.diagnostics[0].position.line == 5);
    CHECK(result.diagnostics[1].position.line == 8);
    CHECK(result.diagnostics[2].position.line == 10);
}

TEST_CASE("rules: TOML errors from the parser keep their position")
{
    CHECK(summary(compile(policy_drop + "[[rule]]\ndport = 99999999999999999999\n")) ==
          "4:29: error: invalid TOML, the file is not checked past this point: Error while "
          "parsing decimal integer: '99999999999999999999' is not representable in 64 bits\n");
    CHECK(summary(compile(policy_drop + "[policy]\n")) ==
          "3:1: error: invalid TOML, the file is not checked past this point: Error while "
          "parsing table header: cannot redefine existing table 'policy'\n");
    CHECK(summary(compile(policy_drop + "[[rule]]\naction = \"accept\" x\n")) ==
          "4:19: error: invalid TOML, the file is not checked past this point: Error while "
          "parsing key-value pair: expected a comment or whitespace, saw 'x'\n");
}

TEST_CASE("rules: unreadable file is one error")
{
    const CompileResult result = compile_rules_file("/nonexistent/portwall.toml");
    CHECK_FALSE(result.ok());
    REQUIRE(result.diagnostics.size() == 1);
    CHECK(format_diagnostic(result.diagnostics[0]) ==
          "/nonexistent/portwall.toml: error: cannot open the rule file: No such file or "
          "directory\n");
}

TEST_CASE("rules: a directory is reported with the reason it cannot be read")
{
    // Opening a directory read-only succeeds; reading it fails with EISDIR.
    const CompileResult result = compile_rules_file("/");
    CHECK_FALSE(result.ok());
    REQUIRE(result.diagnostics.size() == 1);
    CHECK(format_diagnostic(result.diagnostics[0], result.source_text) ==
          "/: error: cannot read the rule file: Is a directory\n");
}

TEST_CASE("rules: an endless file stops at the size limit")
{
    // /dev/zero never ends: reading must stop after max_rule_file_bytes + 1.
    const CompileResult result = compile_rules_file("/dev/zero");
    CHECK_FALSE(result.ok());
    REQUIRE(result.diagnostics.size() == 1);
    CHECK(format_diagnostic(result.diagnostics[0]) ==
          "/dev/zero: error: the rule file is larger than the 16 MiB limit\n");
    CHECK(result.source_text.empty());
    CHECK(max_rule_file_bytes == 16u * 1024 * 1024);
}

TEST_CASE("rules: diagnostic shows source line and caret")
{
    const CompileResult result = compile(policy_drop + "[[rule]]\naction = \"accept\"\n"
                                                       "\tdport = 70000\n");
    REQUIRE(result.diagnostics.size() == 1);
    CHECK(format_diagnostic(result.diagnostics[0], result.source_text) ==
          "test.toml:5:10: error: port 70000 is out of range 0-65535\n"
          "    \tdport = 70000\n"
          "    \t        ^\n");

    // Columns count code points: "é" is two bytes and one column.
    const CompileResult utf8 =
        compile(policy_drop + "[[rule]]\ncomment = \"é\"\naction = \"x\"\n");
    REQUIRE(utf8.diagnostics.size() == 1);
    CHECK(format_diagnostic(utf8.diagnostics[0], utf8.source_text) ==
          "test.toml:5:10: error: invalid action 'x', expected \"accept\" or \"drop\"\n"
          "    action = \"x\"\n"
          "             ^\n");
    const CompileResult after_utf8 = compile(policy_drop + "[[rule]]\naction = \"é\" x\n");
    REQUIRE(after_utf8.diagnostics.size() == 1);
    CHECK(format_diagnostic(after_utf8.diagnostics[0], after_utf8.source_text)
              .ends_with("    action = \"é\" x\n"
                         "                 ^\n"));
}

TEST_CASE("rules: duplicate and covered rules warn")
{
    const CompileResult result = compile(policy_drop + R"(
[[rule]]
name = "web"
action = "accept"
dport = [80, 443, "8000-8080"]
src = "198.18.0.0/15"

[[rule]]
name = "web-copy"
action = "accept"
proto = ["tcp", "udp", "udplite", "sctp"]
dport = ["8000-8080", 443, 80, 443]
src = "198.18.0.0/15"

[[rule]]
action = "drop"
proto = "tcp"
dport = 8080
src = "198.18.4.0/24"

[[rule]]
name = "other-port"
action = "drop"
dport = 8081
src = "198.18.4.0/24"
)");
    REQUIRE(result.ok());
    CHECK(result.error_count() == 0);
    CHECK(summary(result) ==
          "10:1: warning: rule 'web-copy' can never match because it duplicates rule 'web', "
          "which has the same action (accept)\n"
          "  4:1: note: rule 'web' is defined here\n"
          "17:1: warning: rule #3 can never match because rule 'web' matches every packet it "
          "matches, with the opposite action (accept instead of drop)\n"
          "  4:1: note: rule 'web' is defined here\n");
}

TEST_CASE("rules: rules that only overlap do not warn")
{
    const CompileResult result = compile(policy_drop + R"(
[[rule]]
action = "accept"
dport = 80
src = "198.18.0.0/16"

[[rule]]
action = "drop"
dport = 80
src = "198.18.0.0/15"

[[rule]]
action = "drop"
dport = "80-81"
src = "198.18.0.0/16"

[[rule]]
action = "drop"
proto = "icmp"
src = "198.18.0.0/16"

[[rule]]
action = "drop"
src = "2001:db8::/32"

[[rule]]
action = "drop"
dport = 80
src = "2001:db8::/31"
)");
    REQUIRE(result.ok());
    CHECK(summary(result) == "");
}

TEST_CASE("rules: touching port ranges merge for coverage")
{
    const CompileResult result = compile(policy_drop + R"(
[[rule]]
name = "wide"
action = "accept"
dport = ["80-89", "90-99"]

[[rule]]
name = "middle"
action = "accept"
dport = "85-95"
)");
    REQUIRE(result.ok());
    CHECK(summary(result) ==
          "9:1: warning: rule 'middle' can never match because rule 'wide' matches every packet "
          "it matches, with the same action (accept)\n"
          "  4:1: note: rule 'wide' is defined here\n");
}

TEST_CASE("rules: coverage by several rules is not reported")
{
    // A documented limit: each later rule is compared with one earlier rule
    // at a time, and a prefix must sit inside one prefix of that rule.
    const CompileResult result = compile(policy_drop + R"(
[[rule]]
action = "drop"
dport = 80

[[rule]]
action = "drop"
dport = 81

[[rule]]
action = "drop"
dport = "80-81"

[[rule]]
action = "drop"
src = ["198.18.0.0/16", "198.19.0.0/16"]

[[rule]]
action = "drop"
src = "198.18.0.0/15"
)");
    REQUIRE(result.ok());
    CHECK(summary(result) == "");
}

TEST_CASE("rules: rule without ports is not covered by one with ports")
{
    // The later rule also matches TCP packets whose ports cannot be read.
    const CompileResult result = compile(policy_drop + R"(
[[rule]]
action = "accept"
proto = "tcp"
dport = "0-65535"

[[rule]]
action = "drop"
proto = "tcp"

[[rule]]
action = "drop"
proto = "tcp"
sport = 5
)");
    REQUIRE(result.ok());
    CHECK(summary(result) ==
          "13:1: warning: rule #3 can never match because rule #1 matches every packet it "
          "matches, with the opposite action (accept instead of drop)\n"
          "  4:1: note: rule #1 is defined here\n");
}

TEST_CASE("rules: rule without conditions covers IPv4 and IPv6")
{
    const CompileResult result = compile(policy_drop + R"(
[[rule]]
name = "all"
action = "drop"

[[rule]]
name = "v6-ssh"
action = "accept"
dport = 22
dst = "2001:db8::1"
)");
    REQUIRE(result.ok());
    CHECK(summary(result) ==
          "8:1: warning: rule 'v6-ssh' can never match because rule 'all' matches every packet "
          "it matches, with the opposite action (drop instead of accept)\n"
          "  4:1: note: rule 'all' is defined here\n");
}

TEST_CASE("rules: families that cannot agree warn")
{
    const CompileResult result = compile(policy_drop + R"(
[[rule]]
name = "cross"
action = "accept"
src = "198.18.0.0/15"
dst = "2001:db8::/32"

[[rule]]
action = "accept"
proto = "icmp"
src = "2001:db8::/32"

[[rule]]
action = "accept"
proto = "icmpv6"
dst = "198.18.0.1"

[[rule]]
action = "accept"
proto = ["icmp", "icmpv6"]
dst = "198.18.0.1"
)");
    REQUIRE(result.ok());
    CHECK(summary(result) ==
          "4:1: warning: rule 'cross' can never match because 'src' has only IPv4 addresses "
          "and 'dst' only IPv6 addresses\n"
          "10:1: warning: rule #2 can never match because it names only icmp with IPv6 "
          "addresses\n"
          "15:1: warning: rule #3 can never match because it names only icmpv6 with IPv4 "
          "addresses\n");
}

TEST_CASE("rules: rules that the admin ports bypass warn when failing closed")
{
    const std::string rules = R"(
[[rule]]
name = "ssh-admins"
action = "accept"
proto = "tcp"
dport = 22
src = ["198.18.100.0/28", "2001:db8:100::/64"]

[[rule]]
name = "low-ports"
action = "accept"
dport = "1-1024"
dst = "2001:db8::1"
sport = "1024-65535"

[[rule]]
name = "bad-host"
action = "drop"
src = "198.18.66.66"

[[rule]]
name = "ssh-all"
action = "accept"
proto = "tcp"
dport = 22

[[rule]]
name = "udp-22"
action = "accept"
proto = "udp"
dport = 22
src = "198.18.0.0/15"

[[rule]]
name = "admins-anywhere"
action = "accept"
src = "2001:db8:100::/64"

[[rule]]
name = "web-drop"
action = "drop"
proto = "tcp"
dport = 80
)";
    const std::string closed =
        policy_drop + "[daemon]\nfail = \"closed\"\nadmin_ports = [22]\n" + rules;
    const CompileResult result = compile(closed);
    REQUIRE(result.ok());
    const std::string tail = " is in [daemon] admin_ports, which the kernel accepts from every "
                             "address before any rule when failing closed\n";
    CHECK(summary(result) ==
          "7:1: warning: rule 'ssh-admins' limits TCP port 22 by src, but 22" + tail +
          "14:1: warning: rule 'low-ports' limits TCP port 22 by dst and sport, but 22" + tail +
          "21:1: warning: rule 'bad-host' drops TCP port 22, but 22" + tail);

    // Without [daemon] fail the command line may still choose closed.
    const CompileResult unset =
        compile(policy_drop + "[daemon]\nadmin_ports = [\"22\"]\n" + rules);
    REQUIRE(unset.ok());
    CHECK(unset.diagnostics.size() == 3);

    // Failing open installs no admin port rule, and no admin ports means no bypass.
    const CompileResult open =
        compile(policy_drop + "[daemon]\nfail = \"open\"\nadmin_ports = [22]\n" + rules);
    REQUIRE(open.ok());
    CHECK(summary(open) == "");
    const CompileResult none =
        compile(policy_drop + "[daemon]\nfail = \"closed\"\nadmin_ports = []\n" + rules);
    REQUIRE(none.ok());
    CHECK(summary(none) == "");
}

TEST_CASE("syntax: port specs for the command line")
{
    const auto plain = parse_port_spec("22");
    REQUIRE(plain.ok());
    CHECK(plain.value->range == PortRange{22, 22});
    CHECK_FALSE(plain.value->protocol.has_value());

    const auto mysql = parse_port_spec("3306/tcp");
    REQUIRE(mysql.ok());
    CHECK(mysql.value->range == PortRange{3306, 3306});
    CHECK(mysql.value->protocol == ipproto::tcp);

    const auto range = parse_port_spec("6000-6100/udp");
    REQUIRE(range.ok());
    CHECK(range.value->range == PortRange{6000, 6100});
    CHECK(range.value->protocol == ipproto::udp);

    CHECK(parse_port_spec("0-65535/132").value->range == PortRange{0, 65535});
    CHECK(parse_port_spec("22/icmp").error == "protocol 'icmp' has no ports");
    CHECK(parse_port_spec("22/tpc").error ==
          "unknown protocol 'tpc': expected tcp, udp, udplite, sctp, icmp, icmpv6 or a number "
          "0-255");
    CHECK(parse_port_spec("65536/tcp").error == "port 65536 is out of range 0-65535");
    CHECK(parse_port_spec("").error == "invalid port '': expected a number 0-65535");
    CHECK(parse_port_spec("99999999999999999999").error ==
          "invalid port '99999999999999999999': expected a number 0-65535");
}

TEST_CASE("syntax: protocols by name and number")
{
    CHECK(parse_protocol("udplite").value == ipproto::udplite);
    CHECK(parse_protocol("icmpv6").value == ipproto::icmpv6);
    CHECK(parse_protocol("0").value == 0);
    CHECK(parse_protocol("255").value == 255);
    CHECK(parse_protocol("256").error == "protocol number 256 is out of range 0-255");
    CHECK(protocol_name(ipproto::sctp) == "sctp");
    CHECK(protocol_name(47) == "47");
    CHECK(protocol_has_ports(ipproto::udp));
    CHECK_FALSE(protocol_has_ports(ipproto::icmp));
}

TEST_CASE("syntax: addresses, prefixes and set references")
{
    const auto v4_prefix = parse_prefix("198.18.0.0/15");
    REQUIRE(v4_prefix.ok());
    CHECK(v4_prefix.value->address == v4(198, 18, 0, 0));
    CHECK(v4_prefix.value->length == 15);

    const auto v6_host = parse_prefix("2001:db8::1");
    REQUIRE(v6_host.ok());
    CHECK(v6_host.value->address.family == Family::ipv6);
    CHECK(v6_host.value->length == 128);
    CHECK(format_prefix(*v6_host.value) == "2001:db8::1");

    CHECK(format_prefix(*parse_prefix("0.0.0.0/0").value) == "0.0.0.0/0");
    CHECK(format_prefix(*parse_prefix("::/0").value) == "::/0");
    CHECK(parse_prefix("2001:db8::1/0").error ==
          "prefix '2001:db8::1/0' has host bits set, did you mean '::/0'?");
    CHECK(parse_prefix("198.18.0.1/31").error ==
          "prefix '198.18.0.1/31' has host bits set, did you mean '198.18.0.0/31'?");

    const auto set = parse_address_term("@web-servers");
    REQUIRE(set.ok());
    CHECK(set.value->set_name == "web-servers");
    CHECK_FALSE(set.value->prefix.has_value());
    CHECK(parse_address_term("@").error == "invalid set reference '@': set name is empty");
    CHECK(parse_address(" 198.18.0.1").error ==
          "invalid address ' 198.18.0.1': expected an IPv4 or IPv6 address");
}

TEST_CASE("syntax: names")
{
    CHECK(check_name("web-1.primary_db") == "");
    CHECK(check_name("1web") == "");
    CHECK(check_name("") == "name is empty");
    // The control layer checks CLI-made rule names with this function too.
    CHECK(check_name("policy") == "name 'policy' is reserved for the policy verdict");
    CHECK(check_name("Policy") == "");
    CHECK(check_name(std::string(65, 'a')) ==
          "name '" + std::string(65, 'a') + "' is longer than 64 characters");
}

TEST_CASE("syntax: formatted rule compiles back to an equal rule")
{
    const CompileResult original = compile(policy_drop + R"(
[[rule]]
name = "mixed"
action = "accept"
proto = ["tcp", "sctp"]
sport = "1024-65535"
dport = [0, 65535]
src = ["198.18.0.0/15", "2001:db8::/32"]
dst = "2001:db8::1"
comment = "quote \" backslash \\ tab \t"

[[rule]]
action = "accept"
proto = [47, "icmp"]

[[rule]]
action = "drop"
)");
    REQUIRE(original.ok());
    std::string text = policy_drop;
    for (const Rule& rule : original.rules->table.rules)
        text += format_rule_toml(rule);
    const CompileResult again = compile(text);
    REQUIRE(summary(again) == "");

    const auto& before = original.rules->table.rules;
    const auto& after = again.rules->table.rules;
    REQUIRE(after.size() == before.size());
    for (std::size_t i = 0; i < before.size(); ++i) {
        CAPTURE(i);
        CHECK(after[i].name == before[i].name);
        CHECK(after[i].action == before[i].action);
        CHECK(after[i].any_protocol == before[i].any_protocol);
        CHECK(after[i].protocols == before[i].protocols);
        CHECK(after[i].sport == before[i].sport);
        CHECK(after[i].dport == before[i].dport);
        CHECK(after[i].src == before[i].src);
        CHECK(after[i].dst == before[i].dst);
        CHECK(after[i].comment == before[i].comment);
    }
    CHECK(format_rule_toml(before[2]) == "[[rule]]\naction = \"drop\"\n");
}
