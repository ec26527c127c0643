#include "control/state_file.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace portwall::control {

using nlohmann::json;

namespace {

constexpr const char* header_key = "portwall_state";

Diagnostic make_error(const std::string& path, std::uint32_t line, std::uint32_t column,
                      std::string message)
{
    Diagnostic diagnostic;
    diagnostic.position = SourcePosition{path, line, column};
    diagnostic.message = std::move(message);
    return diagnostic;
}

// Column (1-based) of `"key"` in the line, so that an error about a key
// points at it; 1 when the message names no key found in the line.
std::uint32_t column_of_key(std::string_view line, const std::string& message)
{
    const std::size_t open = message.find('"');
    const std::size_t close = open == std::string::npos ? open : message.find('"', open + 1);
    if (close == std::string::npos)
        return 1;
    const std::string quoted = message.substr(open, close - open + 1);
    const std::size_t at = line.find(quoted);
    return at == std::string_view::npos ? 1 : static_cast<std::uint32_t>(at + 1);
}

// Parses one line as JSON. nlohmann's parse_error::byte is the 1-based offset
// of the character where parsing failed, which is the column in one line.
std::optional<json> parse_line(std::string_view line, std::uint32_t& error_column,
                               std::string& error)
{
    try {
        return json::parse(line);
    } catch (const json::parse_error& failure) {
        error_column = static_cast<std::uint32_t>(failure.byte == 0 ? 1 : failure.byte);
        const std::string what = failure.what();
        const std::size_t detail = what.find("syntax error");
        error = "invalid JSON: " + (detail == std::string::npos ? what : what.substr(detail));
        return std::nullopt;
    }
}

bool check_header(std::string_view line, const std::string& path, StateLoad& result)
{
    std::uint32_t column = 1;
    std::string error;
    const std::optional<json> value = parse_line(line, column, error);
    if (!value) {
        result.diagnostics.push_back(make_error(path, 1, column, error));
        return false;
    }
    const bool has_version = value->is_object() && value->contains(header_key) &&
                             (*value)[header_key].is_number_integer();
    if (!has_version) {
        result.diagnostics.push_back(make_error(path, 1, 1,
                                                std::string("first line must be {\"") + header_key +
                                                    "\":1}, found " +
                                                    std::string(line.substr(0, 80))));
        return false;
    }
    const auto version = (*value)[header_key].get<std::int64_t>();
    if (version != state_format_version) {
        result.diagnostics.push_back(
            make_error(path, 1, 1,
                       "state format version " + std::to_string(version) +
                           " is not supported; this portwall reads version " +
                           std::to_string(state_format_version)));
        return false;
    }
    return true;
}

void parse_rule_line(std::string_view line, std::uint32_t number, const std::string& path,
                     StateLoad& result)
{
    std::uint32_t column = 1;
    std::string error;
    const std::optional<json> value = parse_line(line, column, error);
    if (!value) {
        result.diagnostics.push_back(make_error(path, number, column, error));
        return;
    }
    std::optional<RuleSpec> spec = rule_spec_from_json(*value, error);
    if (!spec) {
        result.diagnostics.push_back(make_error(path, number, column_of_key(line, error), error));
        return;
    }
    result.rules.push_back(std::move(*spec));
    result.lines.push_back(number);
}

int fsync_directory(const std::string& dir)
{
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    const int status = ::fsync(fd);
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return status;
}

bool write_all(int fd, std::string_view data)
{
    while (!data.empty()) {
        const ssize_t written = ::write(fd, data.data(), data.size());
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return false;
        data.remove_prefix(static_cast<std::size_t>(written));
    }
    return true;
}

std::string errno_text(const std::string& action, const std::string& path)
{
    return action + " " + path + " failed: " + std::strerror(errno);
}

} // namespace

std::string state_file_path(const std::string& state_dir)
{
    return state_dir + "/state.jsonl";
}

StateLoad parse_state(std::string_view text, const std::string& path)
{
    StateLoad result;
    result.file_exists = true;
    if (text.empty()) {
        result.diagnostics.push_back(make_error(
            path, 1, 1, "state file is empty; expected the line {\"portwall_state\":1}"));
        return result;
    }
    if (text.back() != '\n') {
        // save_state always ends the file with a newline, so a file without
        // one was cut short or written by something else.
        const auto lines =
            static_cast<std::uint32_t>(std::count(text.begin(), text.end(), '\n') + 1);
        result.diagnostics.push_back(
            make_error(path, lines, 1, "last line has no newline: the file is truncated"));
    }

    std::uint32_t number = 0;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        const std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        ++number;

        if (number == 1) {
            if (!check_header(line, path, result))
                return result;
            continue;
        }
        if (line.empty()) {
            result.diagnostics.push_back(make_error(path, number, 1, "empty line"));
            continue;
        }
        parse_rule_line(line, number, path, result);
    }
    return result;
}

StateLoad load_state(const std::string& state_dir)
{
    const std::string path = state_file_path(state_dir);
    std::ifstream input(path, std::ios::binary);
    if (!input) {
        StateLoad result;
        if (errno != ENOENT)
            result.diagnostics.push_back(make_error(path, 0, 0, errno_text("opening", path)));
        return result;
    }
    std::ostringstream text;
    text << input.rdbuf();
    if (input.bad()) {
        StateLoad result;
        result.file_exists = true;
        result.diagnostics.push_back(make_error(path, 0, 0, errno_text("reading", path)));
        return result;
    }
    return parse_state(text.str(), path);
}

std::string format_state(const std::vector<RuleSpec>& rules)
{
    std::string text =
        std::string("{\"") + header_key + "\":" + std::to_string(state_format_version) + "}\n";
    for (const RuleSpec& rule : rules)
        text += rule_spec_to_json(rule).dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    return text;
}

bool save_state(const std::string& state_dir, const std::vector<RuleSpec>& rules,
                std::string& error)
{
    if (::mkdir(state_dir.c_str(), 0755) != 0 && errno != EEXIST) {
        error = errno_text("creating directory", state_dir);
        return false;
    }

    const std::string path = state_file_path(state_dir);
    const std::string temporary = path + ".tmp";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error = errno_text("creating", temporary);
        return false;
    }
    const bool written = write_all(fd, format_state(rules));
    const bool synced = written && ::fsync(fd) == 0;
    const int saved = errno;
    ::close(fd);
    if (!synced) {
        errno = saved;
        error = errno_text(written ? "fsync of" : "writing", temporary);
        ::unlink(temporary.c_str());
        return false;
    }

    if (::rename(temporary.c_str(), path.c_str()) != 0) {
        error = errno_text("renaming " + temporary + " to", path);
        ::unlink(temporary.c_str());
        return false;
    }
    // The rename is durable only once the directory entry is on disk.
    if (fsync_directory(state_dir) != 0) {
        error = errno_text("fsync of directory", state_dir);
        return false;
    }
    return true;
}

StateLock::~StateLock()
{
    if (fd_ >= 0)
        ::close(fd_);
}

bool StateLock::acquire(const std::string& state_dir, std::string& error)
{
    if (::mkdir(state_dir.c_str(), 0755) != 0 && errno != EEXIST) {
        error = errno_text("creating directory", state_dir);
        return false;
    }
    const std::string path = state_dir + "/lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        error = errno_text("opening", path);
        return false;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int saved = errno;
        ::close(fd);
        error =
            saved == EWOULDBLOCK
                ? "another portwall process (a running daemon or an --offline edit) holds " + path
                : "locking " + path + " failed: " + std::strerror(saved);
        return false;
    }
    fd_ = fd;
    return true;
}

} // namespace portwall::control
