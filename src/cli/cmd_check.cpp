// `portwall check`: compile rule files and report their errors and warnings.
#include "cli/commands.hpp"

#include "rules/compiler.hpp"

#include <cstddef>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace portwall::cli {

namespace {

struct CheckOptions {
    std::vector<std::string> files;
    bool strict = false;
};

std::string count_text(std::size_t count, const std::string& noun)
{
    return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

// Check one file: diagnostics to stderr, a summary line to stdout. Returns
// whether the file passes.
bool check_file(const std::string& path, bool strict)
{
    const CompileResult result = compile_rules_file(path);
    for (const Diagnostic& diagnostic : result.diagnostics)
        std::cerr << format_diagnostic(diagnostic, result.source_text);

    const std::size_t errors = result.error_count();
    const std::size_t warnings = result.diagnostics.size() - errors;
    std::string summary = path + ": ";
    if (result.ok()) {
        const RuleTable& table = result.rules->table;
        summary += count_text(table.rules.size(), "rule") + ", policy " +
                   std::string(action_name(table.policy)) + ", ";
    } else {
        summary += "invalid, ";
    }
    summary += count_text(errors, "error") + ", " + count_text(warnings, "warning");
    std::cout << summary << '\n';
    return result.ok() && !(strict && warnings > 0);
}

} // namespace

void add_check_command(CLI::App& app, int& exit_status)
{
    auto options = std::make_shared<CheckOptions>();
    CLI::App* command = app.add_subcommand(
        "check", "Check rule files without applying them. Needs no root and no kernel access.");
    command->add_option("FILE", options->files, "Rule files to check (TOML, format version 1).")
        ->type_name("PATH")
        ->required();
    command->add_flag("--strict", options->strict,
                      "Also fail when a file has warnings, such as a rule that can never match.");
    command->footer(
        "Every error and warning goes to stderr as FILE:LINE:COLUMN: SEVERITY: MESSAGE,\n"
        "followed by the source line. Each file gets one summary line on stdout.\n"
        "Exit status: 0 when every file is valid (warnings allowed unless --strict),\n"
        "1 when any file has an error, 2 on a usage error.\n"
        "docs/rules.md describes the rule file format.");
    command->callback([options, &exit_status] {
        bool all_passed = true;
        for (const std::string& path : options->files)
            all_passed = check_file(path, options->strict) && all_passed;
        exit_status = all_passed ? 0 : 1;
    });
}

} // namespace portwall::cli
