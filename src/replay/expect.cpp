#include "replay/expect.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace portwall::replay {

namespace {

struct Token {
    std::string_view text;
    std::uint32_t column = 0; // 1-based
};

// Split a line at blanks, stopping at a comment. A token that starts with
// '#' begins a comment, except "#N" in the rule position, which names rule N.
std::vector<Token> tokenize(std::string_view line)
{
    std::vector<Token> tokens;
    std::size_t pos = 0;
    while (pos < line.size()) {
        const std::size_t start = line.find_first_not_of(" \t\r", pos);
        if (start == std::string_view::npos)
            break;
        std::size_t end = line.find_first_of(" \t\r", start);
        if (end == std::string_view::npos)
            end = line.size();
        const std::string_view text = line.substr(start, end - start);
        const bool rule_position = tokens.size() == 2;
        const bool rule_number = text.size() > 1 &&
                                 text.find_first_not_of("0123456789", 1) == std::string_view::npos;
        if (text.front() == '#' && !(rule_position && rule_number))
            break;
        tokens.push_back({text, static_cast<std::uint32_t>(start + 1)});
        pos = end;
    }
    return tokens;
}

std::optional<std::uint64_t> parse_index(std::string_view text)
{
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value == 0)
        return std::nullopt;
    return value;
}

std::optional<ExpectedVerdict> parse_verdict(std::string_view text)
{
    if (text == "accept")
        return ExpectedVerdict::accept;
    if (text == "drop")
        return ExpectedVerdict::drop;
    if (text == "not_ip")
        return ExpectedVerdict::not_ip;
    return std::nullopt;
}

std::string_view verdict_name(ExpectedVerdict verdict)
{
    switch (verdict) {
    case ExpectedVerdict::accept:
        return "accept";
    case ExpectedVerdict::drop:
        return "drop";
    case ExpectedVerdict::not_ip:
        return "not_ip";
    }
    return "?";
}

class LineParser {
public:
    LineParser(const std::string& path, std::uint32_t line, std::vector<std::string>& errors)
        : path_(path), line_(line), errors_(errors)
    {
    }

    void error(std::uint32_t column, const std::string& message)
    {
        errors_.push_back(path_ + ":" + std::to_string(line_) + ":" + std::to_string(column) +
                          ": error: " + message);
    }

    // Parse "capture NAME" into `capture`.
    void parse_capture(const std::vector<Token>& tokens, std::string& capture)
    {
        if (tokens.size() < 2) {
            error(tokens[0].column, "missing capture name after 'capture'");
            return;
        }
        if (tokens.size() > 2) {
            error(tokens[2].column, "unexpected '" + std::string(tokens[2].text) +
                                        "' after the capture name; capture names contain no "
                                        "blanks, and comments start with '#'");
            return;
        }
        capture = tokens[1].text;
    }

    // Parse "INDEX[-LAST] VERDICT [RULE]".
    std::optional<Expectation> parse_entry(const std::vector<Token>& tokens)
    {
        Expectation entry;
        entry.line = line_;
        if (!parse_range(tokens[0], entry))
            return std::nullopt;
        if (tokens.size() < 2) {
            error(tokens[0].column + static_cast<std::uint32_t>(tokens[0].text.size()),
                  "missing verdict after the packet index: expected accept, drop or not_ip");
            return std::nullopt;
        }
        const std::optional<ExpectedVerdict> verdict = parse_verdict(tokens[1].text);
        if (!verdict) {
            error(tokens[1].column, "invalid verdict '" + std::string(tokens[1].text) +
                                        "': expected accept, drop or not_ip");
            return std::nullopt;
        }
        entry.verdict = *verdict;
        if (tokens.size() >= 3 && !parse_rule(tokens[2], entry))
            return std::nullopt;
        if (tokens.size() >= 4) {
            error(tokens[3].column, "unexpected '" + std::string(tokens[3].text) +
                                        "' after the rule; comments start with '#'");
            return std::nullopt;
        }
        return entry;
    }

private:
    bool parse_range(const Token& token, Expectation& entry)
    {
        const std::size_t dash = token.text.find('-');
        const std::optional<std::uint64_t> first = parse_index(token.text.substr(0, dash));
        const std::optional<std::uint64_t> last =
            dash == std::string_view::npos ? first : parse_index(token.text.substr(dash + 1));
        if (!first || !last) {
            error(token.column, "invalid packet index '" + std::string(token.text) +
                                    "': expected a number from 1, or a range such as 2-5");
            return false;
        }
        if (*first > *last) {
            error(token.column, "invalid range '" + std::string(token.text) +
                                    "': the first index is above the last");
            return false;
        }
        entry.first = *first;
        entry.last = *last;
        return true;
    }

    bool parse_rule(const Token& token, Expectation& entry)
    {
        if (entry.verdict == ExpectedVerdict::not_ip) {
            error(token.column, "not_ip takes no rule, because a non-IP frame has no verdict");
            return false;
        }
        if (token.text.front() == '#' && !parse_index(token.text.substr(1))) {
            error(token.column, "invalid rule '" + std::string(token.text) +
                                    "': rules are numbered from #1");
            return false;
        }
        entry.rule = token.text;
        return true;
    }

    const std::string& path_;
    std::uint32_t line_;
    std::vector<std::string>& errors_;
};

std::string expected_text(const Expectation& entry)
{
    std::string text(verdict_name(entry.verdict));
    if (!entry.rule.empty())
        text += " " + entry.rule;
    return text;
}

bool rule_agrees(const std::string& expected_rule, const RuleTable& table, const Match& match)
{
    if (expected_rule.empty())
        return true;
    if (expected_rule == "policy")
        return match.is_policy();
    if (match.is_policy())
        return false;
    if (expected_rule.front() == '#')
        return expected_rule == "#" + std::to_string(match.rule + 1);
    return match.rule < table.rules.size() && table.rules[match.rule].name == expected_rule;
}

bool outcome_agrees(const Expectation& entry, const PacketOutcome& outcome,
                    const RuleTable& table)
{
    if (entry.verdict == ExpectedVerdict::not_ip)
        return !outcome.is_ip;
    if (!outcome.is_ip)
        return false;
    const Action expected_action =
        entry.verdict == ExpectedVerdict::accept ? Action::accept : Action::drop;
    return outcome.match.action == expected_action && rule_agrees(entry.rule, table, outcome.match);
}

std::string join(const std::vector<std::string>& items)
{
    std::string text;
    for (const std::string& item : items)
        text += (text.empty() ? "" : ", ") + item;
    return text;
}

// The positions in `captures` that `name` refers to: an exact path match
// wins, otherwise every capture whose file name equals `name`.
std::vector<std::size_t> resolve_capture(const std::string& name,
                                         const std::vector<std::string>& captures)
{
    std::vector<std::size_t> matches;
    for (std::size_t i = 0; i < captures.size(); ++i) {
        if (captures[i] == name)
            return {i};
    }
    for (std::size_t i = 0; i < captures.size(); ++i) {
        if (std::filesystem::path(captures[i]).filename() == name)
            matches.push_back(i);
    }
    return matches;
}

} // namespace

ExpectParseResult parse_expectations(std::string_view text, const std::string& path)
{
    ExpectParseResult result;
    ExpectFile file;
    file.path = path;
    std::string capture;
    std::uint32_t line_number = 0;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos)
            end = text.size();
        const std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        ++line_number;

        const std::vector<Token> tokens = tokenize(line);
        if (tokens.empty())
            continue;
        LineParser parser(path, line_number, result.errors);
        if (tokens[0].text == "capture") {
            parser.parse_capture(tokens, capture);
            continue;
        }
        std::optional<Expectation> entry = parser.parse_entry(tokens);
        if (entry) {
            entry->capture = capture;
            file.entries.push_back(std::move(*entry));
        }
    }
    if (result.errors.empty())
        result.file = std::move(file);
    return result;
}

ExpectParseResult read_expect_file(const std::string& path)
{
    ExpectParseResult result;
    const auto fail = [&](const std::string& reason) {
        result.file.reset();
        result.errors.push_back(path + ": error: failed to read the expect file: " + reason);
        return result;
    };

    // A directory opens as a stream and reads as empty, which would check
    // nothing and pass, so only regular files are accepted.
    std::error_code error;
    const auto status = std::filesystem::status(path, error);
    if (error)
        return fail(error.message());
    if (!std::filesystem::is_regular_file(status))
        return fail("not a regular file");
    if (std::filesystem::file_size(path, error) > max_expect_file_bytes || error)
        return fail(error ? error.message()
                          : "larger than " + std::to_string(max_expect_file_bytes) + " bytes");

    std::ifstream input(path, std::ios::binary);
    if (!input)
        return fail(std::strerror(errno));
    std::ostringstream content;
    content << input.rdbuf();
    result = parse_expectations(content.str(), path);
    if (result.errors.empty() && result.file && result.file->entries.empty())
        return fail("it holds no expectations, so it would check nothing");
    return result;
}

std::optional<ExpectChecker> ExpectChecker::create(const ExpectFile& file,
                                                   const std::vector<std::string>& captures,
                                                   std::vector<std::string>& errors)
{
    const std::size_t errors_before = errors.size();
    ExpectChecker checker;
    checker.path_ = file.path;
    checker.captures_ = captures;
    checker.by_capture_.resize(captures.size());

    for (const Expectation& entry : file.entries) {
        const std::string where = file.path + ":" + std::to_string(entry.line) + ":1: error: ";
        if (entry.capture.empty() && captures.size() != 1) {
            errors.push_back(where + "entries before the first 'capture' line are ambiguous " +
                             "with " + std::to_string(captures.size()) +
                             " captures; add a 'capture NAME' line");
            continue;
        }
        const std::vector<std::size_t> matches =
            entry.capture.empty() ? std::vector<std::size_t>{0}
                                  : resolve_capture(entry.capture, captures);
        if (matches.size() != 1) {
            errors.push_back(where + "capture '" + entry.capture + "' matches " +
                             (matches.empty() ? "none" : "more than one") +
                             " of the replayed captures (" + join(captures) +
                             "); write its path as given on the command line");
            continue;
        }
        checker.by_capture_[matches[0]].push_back(entry);
    }

    for (std::size_t i = 0; i < captures.size(); ++i) {
        auto& entries = checker.by_capture_[i];
        std::sort(entries.begin(), entries.end(),
                  [](const Expectation& a, const Expectation& b) { return a.first < b.first; });
        for (std::size_t k = 1; k < entries.size(); ++k) {
            if (entries[k].first > entries[k - 1].last)
                continue;
            errors.push_back(file.path + ":" + std::to_string(entries[k].line) +
                             ":1: error: packet " + std::to_string(entries[k].first) + " of " +
                             captures[i] + " already has an expectation on line " +
                             std::to_string(entries[k - 1].line));
        }
    }
    if (errors.size() != errors_before)
        return std::nullopt;
    return checker;
}

void ExpectChecker::check(std::size_t capture, const PacketOutcome& outcome,
                          const RuleTable& table)
{
    const auto& entries = by_capture_[capture];
    const auto after = std::upper_bound(
        entries.begin(), entries.end(), outcome.index,
        [](std::uint64_t index, const Expectation& entry) { return index < entry.first; });
    if (after == entries.begin())
        return;
    const Expectation& entry = *(after - 1);
    if (outcome.index > entry.last || outcome_agrees(entry, outcome, table))
        return;

    const std::string actual =
        outcome.is_ip ? std::string(action_name(outcome.match.action)) + " " +
                            decided_by(table, outcome.match)
                      : "not_ip";
    differences_.push_back(
        {captures_[capture], outcome.index, expected_text(entry), actual, entry.line});
}

void ExpectChecker::finish(std::size_t capture, std::uint64_t packets_read)
{
    for (const Expectation& entry : by_capture_[capture]) {
        if (entry.last <= packets_read)
            continue;
        const std::string actual =
            "missing (the capture has " + std::to_string(packets_read) + " packets)";
        differences_.push_back({captures_[capture], std::max(entry.first, packets_read + 1),
                                expected_text(entry), actual, entry.line});
    }
}

std::string decided_by(const RuleTable& table, const Match& match)
{
    return match.is_policy() ? "policy" : rule_display_name(table, match.rule);
}

} // namespace portwall::replay
