// The state file: the rules added from the command line, kept across
// restarts in STATE_DIR/state.jsonl.
//
// Format (version 1), one JSON object per line so that an error has a line
// and a column:
//   {"portwall_state":1}
//   {"action":"drop","port":"3306/tcp","from":["198.18.0.0/24"],"created":1796400000}
//   ...
// Rule lines use the same keys as the control protocol's "rule" object, in
// the order the rules are tried. A missing file means no CLI rules.
//
// Writes go to a temporary file that is fsynced, renamed over the old file,
// and then the directory is fsynced, so a crash or power loss leaves either
// the old or the new file, never a mix.
#pragma once

#include "control/protocol.hpp"
#include "rules/compiler.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace portwall::control {

inline constexpr int state_format_version = 1;

std::string state_file_path(const std::string& state_dir);

struct StateLoad {
    std::vector<RuleSpec> rules;
    std::vector<std::uint32_t> lines;    // line of each rule, for later errors
    std::vector<Diagnostic> diagnostics; // errors with their line and column
    bool file_exists = false;

    bool ok() const noexcept { return diagnostics.empty(); }
};

// Parse state text. `path` names the file in diagnostics. Every bad line is
// reported, not only the first.
StateLoad parse_state(std::string_view text, const std::string& path);

// Read and parse the state file under `state_dir`.
StateLoad load_state(const std::string& state_dir);

std::string format_state(const std::vector<RuleSpec>& rules);

// Write the state atomically (see the file comment). Creates `state_dir`
// (mode 0755) when it is missing. Returns false and sets `error`, with the
// path and errno text, when any step fails; the old file then stays.
bool save_state(const std::string& state_dir, const std::vector<RuleSpec>& rules,
                std::string& error);

// An exclusive flock(2) on STATE_DIR/lock, held by the daemon for its whole
// life and by `--offline` edits, so that two writers never interleave.
class StateLock {
public:
    StateLock() = default;
    StateLock(const StateLock&) = delete;
    StateLock& operator=(const StateLock&) = delete;
    ~StateLock();

    // Take the lock without waiting. On failure sets `error`, which names
    // the other process kind when the lock is taken.
    bool acquire(const std::string& state_dir, std::string& error);

private:
    int fd_ = -1;
};

} // namespace portwall::control
