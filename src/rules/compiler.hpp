// The rules compiler: TOML rule files (format version 1) to a RuleTable.
//
// All errors of a file are collected, each with its position; a file with any
// error yields no table, so a caller can never apply half a file.
#pragma once

#include "classify/rule.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portwall {

struct SourcePosition {
    std::string file;
    std::uint32_t line = 0; // 1-based; 0 when unknown
    std::uint32_t column = 0;
};

struct Diagnostic {
    enum class Severity : std::uint8_t { error, warning, note };

    Severity severity = Severity::error;
    SourcePosition position;
    std::string message;
    // Related places (the earlier duplicate, the covering rule), printed as
    // notes after the diagnostic.
    std::vector<Diagnostic> notes;
};

// What the daemon does when it cannot judge packets: "open" lets them pass,
// "closed" drops them. Covers both a dead daemon and a full queue.
enum class FailMode : std::uint8_t { open, closed };

// Everything a rule file sets.
struct RuleFile {
    RuleTable table;
    std::optional<FailMode> fail;            // [daemon] fail, when the file sets it
    std::vector<std::uint16_t> admin_ports;  // [daemon] admin_ports: TCP ports kept
                                             // reachable in the kernel when failing closed
    // [sets], by name without the '@', with nested sets expanded, so that
    // rules made on the command line can refer to them too.
    std::map<std::string, std::vector<Prefix>> sets;
};

struct CompileResult {
    std::optional<RuleFile> rules; // set only when there is no error
    std::vector<Diagnostic> diagnostics; // in file order
    std::string source_text;             // the text compiled, for format_diagnostic

    bool ok() const noexcept { return rules.has_value(); }
    std::size_t error_count() const noexcept;
};

// Compile rule text. `source_name` is used in diagnostics and rule origins.
CompileResult compile_rules(std::string_view text, const std::string& source_name);

// The largest rule file compile_rules_file reads (16 MiB). A 10,000-rule file
// takes about 1 MiB; the limit keeps an endless input such as /dev/zero or a
// mistaken log file from filling memory, in `check` and at every reload.
inline constexpr std::size_t max_rule_file_bytes = std::size_t{16} << 20;

// Read and compile a rule file. A file that cannot be opened or read (a
// directory, for example) or that is larger than max_rule_file_bytes is one
// error naming the reason, and reading stops there. Every caller that loads
// a rule file uses this, so they all report the same errors.
CompileResult compile_rules_file(const std::string& path);

// Format one diagnostic as `FILE:LINE:COLUMN: error: MESSAGE`, followed by
// the source line and a caret under the column when `source_text` is given,
// and then its notes. The text ends with a newline.
std::string format_diagnostic(const Diagnostic& diagnostic, std::string_view source_text = {});

} // namespace portwall
