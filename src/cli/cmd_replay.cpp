// `portwall replay`: run captures through a rule file and report the verdicts.
#include "cli/commands.hpp"

#include "classify/ruleset.hpp"
#include "replay/expect.hpp"
#include "replay/replay.hpp"
#include "replay/report.hpp"
#include "rules/compiler.hpp"

#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace portwall::cli {

namespace {

// Exit statuses, documented in docs/replay.md.
constexpr int exit_ok = 0;
constexpr int exit_expect_differences = 1;
constexpr int exit_error = 2;

struct ReplayOptions {
    std::string rules_path;
    std::vector<std::string> captures;
    std::string expect_path;
    bool json = false;
    bool packets = false;
};

std::string read_text(const std::string& path)
{
    std::ifstream input(path, std::ios::binary);
    std::ostringstream content;
    content << input.rdbuf();
    return content.str();
}

// Compile the rule file, printing its diagnostics to stderr. Returns nothing
// when the file has an error.
std::optional<RuleTable> load_rules(const std::string& path)
{
    CompileResult compiled = compile_rules_file(path);
    const std::string source = read_text(path);
    for (const Diagnostic& diagnostic : compiled.diagnostics)
        std::cerr << format_diagnostic(diagnostic, source) << '\n';
    if (!compiled.ok()) {
        std::cerr << "portwall replay: error: " << path << ": " << compiled.error_count()
                  << " error(s) in the rule file; nothing was replayed\n";
        return std::nullopt;
    }
    return std::move(compiled.rules->table);
}

// Read and resolve the expect file, printing its errors to stderr.
std::optional<replay::ExpectChecker> load_expectations(const ReplayOptions& options)
{
    const replay::ExpectParseResult parsed = replay::read_expect_file(options.expect_path);
    std::vector<std::string> errors = parsed.errors;
    std::optional<replay::ExpectChecker> checker;
    if (parsed.file)
        checker = replay::ExpectChecker::create(*parsed.file, options.captures, errors);
    for (const std::string& error : errors)
        std::cerr << error << '\n';
    return checker;
}

void report_problems(const replay::RunResult& result, const std::string& expect_path)
{
    for (const replay::ExpectDifference& difference : result.differences)
        std::cerr << "portwall replay: difference: "
                  << replay::format_difference(difference, expect_path) << '\n';
    for (const replay::CaptureReport& capture : result.captures) {
        if (capture.ok())
            continue;
        std::cerr << "portwall replay: error: " << capture.path;
        if (capture.failed_index != 0)
            std::cerr << ": packet " << capture.failed_index;
        std::cerr << ": " << capture.error;
        if (capture.failed_index != 0)
            std::cerr << " (packets read before it: " << capture.packets << ")";
        std::cerr << '\n';
    }
}

int run_replay(const ReplayOptions& options)
{
    std::optional<RuleTable> table = load_rules(options.rules_path);
    if (!table)
        return exit_error;

    std::optional<replay::ExpectChecker> checker;
    if (!options.expect_path.empty()) {
        checker = load_expectations(options);
        if (!checker)
            return exit_error;
    }

    const Ruleset ruleset(std::move(*table), ClassifierKind::compiled, 1);
    replay::RunResult result;
    result.expectations_checked = checker.has_value();
    for (std::size_t i = 0; i < options.captures.size(); ++i) {
        const auto on_packet = [&](const replay::CaptureReport& capture,
                                   const replay::PacketOutcome& outcome) {
            if (options.packets)
                std::cout << replay::format_packet_line(capture.path, outcome, ruleset.table())
                          << '\n';
            if (checker)
                checker->check(i, outcome, ruleset.table());
        };
        replay::CaptureReport report =
            replay::replay_capture(options.captures[i], ruleset, result.totals, on_packet);
        if (checker)
            checker->finish(i, report.packets);
        result.captures.push_back(std::move(report));
    }
    if (checker)
        result.differences = checker->differences();

    if (options.json)
        std::cout << replay::format_json_summary(result, ruleset) << '\n';
    else
        std::cout << replay::format_text_summary(result, ruleset);
    std::cout.flush();
    report_problems(result, options.expect_path);

    for (const replay::CaptureReport& capture : result.captures) {
        if (!capture.ok())
            return exit_error;
    }
    return result.differences.empty() ? exit_ok : exit_expect_differences;
}

} // namespace

void add_replay_command(CLI::App& app, int& exit_status)
{
    auto options = std::make_shared<ReplayOptions>();
    CLI::App* command = app.add_subcommand(
        "replay",
        "Replay pcap or pcapng captures through a rule file and report each verdict.\n"
        "Needs no root and touches no network. Exit status: 0 ok, 1 when --expect\n"
        "found differences, 2 on a usage, rule file or capture error.");
    command->add_option("--rules", options->rules_path, "Rule file (TOML) to judge packets with")
        ->required();
    command->add_option("captures", options->captures,
                        "Capture files (pcap or pcapng); packet indexes restart at 1 in each")
        ->required();
    CLI::Option* json = command->add_flag(
        "--json", options->json, "Print the summary as one JSON object instead of text");
    command
        ->add_flag("--packets", options->packets,
                   "Print one line per packet: capture:index, family, protocol, addresses, "
                   "verdict, deciding rule and why ports are missing")
        ->excludes(json);
    command->add_option("--expect", options->expect_path,
                        "File of expected verdicts (format in docs/replay.md); exit 1 on any "
                        "difference");
    command->callback([options, &exit_status] { exit_status = run_replay(*options); });
}

} // namespace portwall::cli
