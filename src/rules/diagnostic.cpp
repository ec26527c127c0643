#include "rules/compiler.hpp"

#include <algorithm>

namespace portwall {

namespace {

std::string_view severity_name(Diagnostic::Severity severity) noexcept
{
    switch (severity) {
    case Diagnostic::Severity::error: return "error";
    case Diagnostic::Severity::warning: return "warning";
    case Diagnostic::Severity::note: return "note";
    }
    return "error";
}

// Line `number` (1-based) of `text`, without its line break; empty when the
// text has fewer lines.
std::string_view source_line(std::string_view text, std::uint32_t number)
{
    std::size_t start = 0;
    for (std::uint32_t line = 1; line < number; ++line) {
        const std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos)
            return {};
        start = end + 1;
    }
    std::string_view line = text.substr(start, text.find('\n', start) - start);
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    return line;
}

void append_excerpt(std::string& out, std::string_view text, const SourcePosition& position)
{
    if (text.empty() || position.line == 0)
        return;
    const std::string_view line = source_line(text, position.line);
    if (line.empty())
        return;
    out.append("    ").append(line).append("\n    ");
    // toml++ counts columns in code points, so one pad character stands for
    // each UTF-8 sequence, and tabs stay tabs so that the caret lines up.
    std::uint32_t column = 1;
    for (std::size_t i = 0; i < line.size() && column < position.column; ++i) {
        const auto byte = static_cast<unsigned char>(line[i]);
        if ((byte & 0xc0) == 0x80)
            continue; // a continuation byte of the previous code point
        out += byte == '\t' ? '\t' : ' ';
        ++column;
    }
    out.append("^\n");
}

} // namespace

std::size_t CompileResult::error_count() const noexcept
{
    return static_cast<std::size_t>(
        std::count_if(diagnostics.begin(), diagnostics.end(), [](const Diagnostic& diagnostic) {
            return diagnostic.severity == Diagnostic::Severity::error;
        }));
}

std::string format_diagnostic(const Diagnostic& diagnostic, std::string_view source_text)
{
    std::string out = diagnostic.position.file;
    if (diagnostic.position.line > 0) {
        // Appended piece by piece: `":" + std::to_string(...)` trips a false
        // -Wrestrict warning in GCC 12.
        out.append(":").append(std::to_string(diagnostic.position.line));
        out.append(":").append(std::to_string(diagnostic.position.column));
    }
    out.append(": ").append(severity_name(diagnostic.severity)).append(": ");
    out.append(diagnostic.message).append("\n");
    append_excerpt(out, source_text, diagnostic.position);
    for (const Diagnostic& note : diagnostic.notes)
        out += format_diagnostic(note, source_text);
    return out;
}

} // namespace portwall
