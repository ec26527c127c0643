// Expected verdicts for `portwall replay --expect FILE`, and their check.
//
// Format, one entry per line (docs/replay.md has the full description):
//
//   # comment
//   capture web.pcap        the following entries are about this capture
//   1 accept                packet 1 is accepted, by any rule or the policy
//   2-5 drop ssh            packets 2 to 5 are dropped by the rule named ssh
//   6 drop #3               packet 6 is dropped by the third rule
//   7 accept policy         packet 7 is accepted by the policy
//   8 not_ip                frame 8 is not an IP packet (it has no verdict)
//
// Packet indexes are 1-based per capture. Packets without an entry are not
// checked.
#pragma once

#include "classify/rule.hpp"
#include "replay/replay.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portwall::replay {

enum class ExpectedVerdict : std::uint8_t { accept, drop, not_ip };

struct Expectation {
    std::string capture; // as written after `capture`; empty before the first such line
    std::uint64_t first = 0;
    std::uint64_t last = 0; // equal to `first` for a single packet
    ExpectedVerdict verdict = ExpectedVerdict::accept;
    std::string rule; // rule name, "#N" or "policy"; empty: any
    std::uint32_t line = 0;
};

struct ExpectFile {
    std::string path;
    std::vector<Expectation> entries;
};

struct ExpectParseResult {
    std::optional<ExpectFile> file;  // set only when there is no error
    std::vector<std::string> errors; // "FILE:LINE:COLUMN: error: MESSAGE"
};

// Parse expectation text; `path` names it in errors.
ExpectParseResult parse_expectations(std::string_view text, const std::string& path);

// Read and parse an expectation file. A file that cannot be read is one error.
// Expect files are written by hand or by scripts; anything larger is a mistake.
inline constexpr std::uintmax_t max_expect_file_bytes = 64 * 1024 * 1024;

// Read and parse an expect file. A path that is not a regular file, a file
// larger than max_expect_file_bytes and a file without expectations are errors.
ExpectParseResult read_expect_file(const std::string& path);

// One packet whose outcome differs from its expectation.
struct ExpectDifference {
    std::string capture;
    std::uint64_t index = 0;
    std::string expected; // e.g. "drop ssh"
    std::string actual;   // e.g. "accept policy", or "missing" past the capture's end
    std::uint32_t line = 0; // line of the expectation in the expect file
};

// Checks packets against an ExpectFile as they are replayed.
class ExpectChecker {
public:
    // Assign every entry to one of `captures` (paths as given on the command
    // line). An entry's capture matches a path that equals it or whose file
    // name equals it. Reports unknown, ambiguous and overlapping entries in
    // `errors` and returns nothing then.
    static std::optional<ExpectChecker> create(const ExpectFile& file,
                                               const std::vector<std::string>& captures,
                                               std::vector<std::string>& errors);

    // Check packet `outcome` of capture number `capture` (its position in the
    // list given to create).
    void check(std::size_t capture, const PacketOutcome& outcome, const RuleTable& table);

    // Report every expectation of `capture` that lies past its last packet.
    void finish(std::size_t capture, std::uint64_t packets_read);

    const std::vector<ExpectDifference>& differences() const noexcept { return differences_; }

private:
    std::string path_;
    std::vector<std::string> captures_;
    std::vector<std::vector<Expectation>> by_capture_; // sorted by `first`, no overlaps
    std::vector<ExpectDifference> differences_;
};

// The name of what decided a verdict: the rule's display name or "policy".
std::string decided_by(const RuleTable& table, const Match& match);

} // namespace portwall::replay
