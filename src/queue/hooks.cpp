// Hook rules through the iptables (iptables-nft or legacy) and nft commands.
//
// Each family's rules are loaded in one iptables-restore or nft transaction,
// so a family is either wholly installed or untouched. Commands run through
// fork and execvp without a shell, and their output is kept for errors.
#include "queue/hooks.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace portwall {
namespace {

constexpr std::string_view chain_name = "PORTWALL";
constexpr std::string_view nft_table = "portwall";

// The legacy iptables backend takes the xtables lock, and `-w` makes it wait
// for the lock instead of failing. This timeout bounds every command, so a
// stuck one cannot hang a daemon's start or stop.
constexpr int command_timeout_ms = 30'000;
constexpr int exit_not_found = 127;

struct CommandResult {
    int exit_code = -1; // -1 when the command was killed or could not start
    std::string output; // stdout and stderr together
};

std::string join_command(const std::vector<std::string>& argv)
{
    std::string text;
    for (const std::string& word : argv) {
        if (!text.empty())
            text += ' ';
        text += word;
    }
    return text;
}

std::string trim_output(std::string_view output)
{
    while (!output.empty() && (output.back() == '\n' || output.back() == ' '))
        output.remove_suffix(1);
    return std::string(output);
}

[[noreturn]] void exec_child(int input_fd, int output_fd, char* const* argv)
{
    // Only async-signal-safe calls from here on: the parent may have threads.
    dup2(input_fd, STDIN_FILENO);
    dup2(output_fd, STDOUT_FILENO);
    dup2(output_fd, STDERR_FILENO);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr); // a daemon may block signals for signalfd
    // A process group of its own keeps a terminal's Ctrl-C, meant for the
    // daemon, from killing the tool halfway through removing the hooks.
    setpgid(0, 0);
    close_range(3, ~0U, 0);
    execvp(argv[0], argv);
    if (errno == ENOENT && std::strchr(argv[0], '/') == nullptr) {
        // Daemons started with a PATH that lacks /usr/sbin still find the tools.
        char path[256] = "/usr/sbin/";
        std::strncat(path, argv[0], sizeof path - std::strlen(path) - 1);
        execv(path, argv);
    }
    _exit(exit_not_found);
}

// Feed `input` and collect output until the child closes its end or the
// timeout passes; returns false on timeout.
bool exchange_with_child(int input_fd, int output_fd, std::string_view input, std::string& output)
{
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(command_timeout_ms);
    std::size_t written = 0;
    if (input.empty()) {
        close(input_fd);
        input_fd = -1;
    }
    for (;;) {
        pollfd fds[2] = {{output_fd, POLLIN, 0}, {input_fd, POLLOUT, 0}};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            break;
        const int ready = poll(fds, input_fd >= 0 ? 2 : 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            break;
        if (input_fd >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
            // MSG_NOSIGNAL: a child that exits early must not raise SIGPIPE here.
            const ssize_t sent = send(input_fd, input.data() + written, input.size() - written,
                                      MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent > 0)
                written += static_cast<std::size_t>(sent);
            if (sent < 0 && errno != EAGAIN && errno != EINTR)
                written = input.size();
            if (written == input.size()) {
                close(input_fd);
                input_fd = -1;
            }
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            char buffer[4096];
            const ssize_t got = read(output_fd, buffer, sizeof buffer);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                if (input_fd >= 0)
                    close(input_fd);
                return true;
            }
            output.append(buffer, static_cast<std::size_t>(got));
        }
    }
    if (input_fd >= 0)
        close(input_fd);
    return false;
}

CommandResult run_command(const std::vector<std::string>& argv, std::string_view input = {})
{
    CommandResult result;
    std::vector<char*> args;
    for (const std::string& word : argv)
        args.push_back(const_cast<char*>(word.c_str()));
    args.push_back(nullptr);

    // A socket pair for stdin, so that send() can refuse SIGPIPE; a pipe for output.
    int input_pair[2];
    int output_pipe[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, input_pair) != 0) {
        result.output = std::string("socketpair failed: ") + std::strerror(errno);
        return result;
    }
    if (pipe2(output_pipe, O_CLOEXEC) != 0) {
        result.output = std::string("pipe2 failed: ") + std::strerror(errno);
        close(input_pair[0]);
        close(input_pair[1]);
        return result;
    }
    const pid_t pid = fork();
    if (pid == 0)
        exec_child(input_pair[1], output_pipe[1], args.data());
    close(input_pair[1]);
    close(output_pipe[1]);
    if (pid < 0) {
        result.output = std::string("fork failed: ") + std::strerror(errno);
        close(input_pair[0]);
        close(output_pipe[0]);
        return result;
    }

    const bool finished = exchange_with_child(input_pair[0], output_pipe[0], input, result.output);
    close(output_pipe[0]);
    if (!finished) {
        kill(pid, SIGKILL);
        result.output += "\n(killed after " + std::to_string(command_timeout_ms / 1000) + " s)";
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (finished && WIFEXITED(status))
        result.exit_code = WEXITSTATUS(status);
    result.output = trim_output(result.output);
    return result;
}

// The first line that nft marks as an error, for a one-line log entry.
std::string first_error_line(const std::string& output)
{
    std::size_t start = 0;
    while (start < output.size()) {
        std::size_t end = output.find('\n', start);
        if (end == std::string::npos)
            end = output.size();
        const std::string_view line(output.data() + start, end - start);
        const std::size_t marker = line.find("Error:");
        if (marker != std::string_view::npos)
            return std::string(line.substr(marker));
        start = end + 1;
    }
    return output.substr(0, output.find('\n'));
}

std::string command_error(const std::vector<std::string>& argv, const CommandResult& result)
{
    std::string text = "'";
    text += join_command(argv);
    text += "' ";
    if (result.exit_code == exit_not_found)
        text += "failed: command not found or not executable";
    else if (result.exit_code < 0)
        text += "did not finish";
    else
        text += "exited with status " + std::to_string(result.exit_code);
    if (!result.output.empty())
        text += ": " + result.output;
    return text;
}

std::string queue_range(const HookConfig& config, char separator)
{
    const unsigned last = unsigned{config.first_queue} + config.queue_count - 1u;
    return std::to_string(config.first_queue) + separator + std::to_string(last);
}

std::string hex_mark(std::uint32_t mark)
{
    char text[16];
    std::snprintf(text, sizeof text, "0x%x", mark);
    return text;
}

bool fail_closed_admin(const HookConfig& config)
{
    return !config.fail_open && !config.admin_ports.empty();
}

// ---- iptables --------------------------------------------------------------

const char* iptables_tool(bool ipv6) { return ipv6 ? "ip6tables" : "iptables"; }
const char* restore_tool(bool ipv6) { return ipv6 ? "ip6tables-restore" : "iptables-restore"; }

std::string iptables_queue_rule(const HookConfig& config)
{
    std::string rule = "-A PORTWALL -j NFQUEUE";
    if (config.queue_count > 1) {
        rule += " --queue-balance " + queue_range(config, ':');
        if (config.cpu_fanout)
            rule += " --queue-cpu-fanout";
    } else {
        rule += " --queue-num " + std::to_string(config.first_queue);
    }
    if (config.fail_open)
        rule += " --queue-bypass";
    return rule;
}

// iptables-restore input that (re)creates the chain with exactly our rules.
// With --noflush, declaring an existing chain empties it and touches nothing
// else, so a chain left behind by a killed daemon is replaced, not doubled.
std::string iptables_restore_text(const HookConfig& config, bool ipv6, bool insert_jump)
{
    std::string text = "*filter\n:PORTWALL - [0:0]\n";
    if (config.accept_loopback)
        text += "-A PORTWALL -i lo -j ACCEPT\n";
    if (fail_closed_admin(config)) {
        // Kernel-level and unconditional: no rule file can close these ports.
        for (const std::uint16_t port : config.admin_ports)
            text += "-A PORTWALL -p tcp -m tcp --dport " + std::to_string(port) + " -j ACCEPT\n";
        // Without neighbour discovery the admin port is unreachable over IPv6
        // once the peer's neighbour cache entry expires.
        if (ipv6) {
            text += "-A PORTWALL -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT\n";
            text += "-A PORTWALL -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT\n";
        }
    }
    if (config.mode == QueueMode::flow) {
        // NEW, UNTRACKED and INVALID packets go on to the queue, so the rules
        // judge every packet that conntrack cannot place in a known connection.
        // Connections carrying the mark bit are excepted: a rule change drops
        // them, so each of their packets must meet the rules in the queue.
        const std::string mark = hex_mark(config.flow_mark);
        text += "-A PORTWALL -m conntrack --ctstate ESTABLISHED,RELATED -m connmark ! --mark " +
                mark + "/" + mark + " -j ACCEPT\n";
    }
    text += iptables_queue_rule(config) + "\n";
    if (insert_jump)
        text += "-I INPUT 1 -j PORTWALL\n";
    text += "COMMIT\n";
    return text;
}

bool iptables_jump_present(bool ipv6)
{
    return run_command({iptables_tool(ipv6), "-w", "-C", "INPUT", "-j", std::string(chain_name)})
               .exit_code == 0;
}

bool install_iptables_family(const HookConfig& config, bool ipv6, std::string& error)
{
    const std::string text = iptables_restore_text(config, ipv6, !iptables_jump_present(ipv6));
    const std::vector<std::string> argv = {restore_tool(ipv6), "-w", "--noflush"};
    const CommandResult result = run_command(argv, text);
    if (result.exit_code == 0)
        return true;
    error = command_error(argv, result);
    return false;
}

bool remove_iptables_family(bool ipv6, std::string& error)
{
    const std::string chain(chain_name);
    const std::string tool = iptables_tool(ipv6);

    // Delete every jump, in case an admin or an older run added a second one.
    for (int attempt = 0; attempt < 16; ++attempt) {
        const CommandResult deleted = run_command({tool, "-w", "-D", "INPUT", "-j", chain});
        if (deleted.exit_code == exit_not_found)
            return true; // the tool is absent here, so it cannot have installed anything
        if (deleted.exit_code == 0)
            continue;
        // A failed delete is final only when no jump is left; a delete that
        // was interrupted or lost a race with the lock is tried again.
        if (run_command({tool, "-w", "-C", "INPUT", "-j", chain}).exit_code != 0)
            break;
    }
    if (run_command({tool, "-w", "-S", chain}).exit_code != 0)
        return true; // no chain: nothing left to remove

    for (const char* step : {"-F", "-X"}) {
        const std::vector<std::string> argv = {tool, "-w", step, chain};
        const CommandResult result = run_command(argv);
        if (result.exit_code != 0) {
            error = command_error(argv, result);
            return false;
        }
    }
    return true;
}

HookResult install_iptables(const HookConfig& config)
{
    HookResult result;
    result.used = HookBackend::iptables;
    if (!install_iptables_family(config, false, result.error)) {
        result.ok = false;
        return result;
    }
    if (!install_iptables_family(config, true, result.error)) {
        // All or nothing: take the IPv4 half back out.
        // NOTE: this also removes a chain that a killed daemon left behind, so
        // after a failed restart a fail-closed host passes IPv4 traffic.
        std::string rollback_error;
        if (!remove_iptables_family(false, rollback_error))
            result.error += "; rollback of the IPv4 rules also failed: " + rollback_error;
        result.ok = false;
    }
    return result;
}

// ---- nft -------------------------------------------------------------------

bool nft_table_present()
{
    return run_command({"nft", "list", "table", "inet", std::string(nft_table)}).exit_code == 0;
}

bool remove_nft(std::string& error)
{
    if (!nft_table_present())
        return true; // also covers a missing nft binary
    const std::vector<std::string> argv = {"nft", "delete", "table", "inet", std::string(nft_table)};
    const CommandResult result = run_command(argv);
    if (result.exit_code == 0)
        return true;
    error = command_error(argv, result);
    return false;
}

// Check the script in the kernel without committing it. This is how a kernel
// without the nft queue expression shows itself: "Could not process rule".
bool nft_check(const std::string& script, std::string& error)
{
    const std::vector<std::string> argv = {"nft", "--check", "-f", "-"};
    const CommandResult result = run_command(argv, script);
    if (result.exit_code == 0)
        return true;
    CommandResult summary = result;
    summary.output = first_error_line(result.output);
    error = command_error(argv, summary);
    return false;
}

// NOTE: the tests run on a kernel without the nft queue expression. Loading
// and replacing the table was checked with a counter in place of the queue
// statement, never with the queue statement itself.
HookResult install_nft(const std::string& script)
{
    HookResult result;
    result.used = HookBackend::nft;
    const std::vector<std::string> argv = {"nft", "-f", "-"};
    const CommandResult applied = run_command(argv, script);
    if (applied.exit_code != 0) {
        result.ok = false;
        result.error = command_error(argv, applied);
    }
    return result;
}

std::string validate(const HookConfig& config)
{
    if (config.queue_count == 0)
        return "invalid queue count 0: at least one queue is needed";
    if (unsigned{config.first_queue} + config.queue_count - 1u > 65535u)
        return "invalid queue range " + std::to_string(config.first_queue) + " + " +
               std::to_string(config.queue_count) + " queues: queue numbers end at 65535";
    if (!valid_flow_mark(config.flow_mark))
        return "invalid flow mark " + hex_mark(config.flow_mark) + ": it must be one bit";
    return {};
}

} // namespace

bool valid_flow_mark(std::uint32_t mark) noexcept
{
    return mark != 0 && (mark & (mark - 1)) == 0;
}

std::string_view hook_backend_name(HookBackend backend) noexcept
{
    switch (backend) {
    case HookBackend::automatic: return "automatic";
    case HookBackend::iptables: return "iptables";
    case HookBackend::nft: return "nft";
    }
    return "unknown";
}

std::string_view queue_mode_name(QueueMode mode) noexcept
{
    return mode == QueueMode::flow ? "flow" : "packet";
}

std::string iptables_ruleset_text(const HookConfig& config, bool ipv6)
{
    return iptables_restore_text(config, ipv6, true);
}

std::string nft_ruleset_text(const HookConfig& config)
{
    // Declaring the table and deleting it first makes the load a replacement
    // within one transaction, whether or not an old table is there.
    std::string text = "table inet portwall {\n}\ndelete table inet portwall\n";
    text += "table inet portwall {\n\tchain input {\n";
    text += "\t\ttype filter hook input priority filter; policy accept;\n";
    if (config.accept_loopback)
        text += "\t\tiifname \"lo\" accept\n";
    if (fail_closed_admin(config)) {
        std::string ports;
        for (const std::uint16_t port : config.admin_ports)
            ports += (ports.empty() ? "" : ", ") + std::to_string(port);
        text += "\t\ttcp dport { " + ports + " } accept\n";
        text += "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n";
    }
    if (config.mode == QueueMode::flow) {
        text += "\t\tct state established,related ct mark & " + hex_mark(config.flow_mark) +
                " == 0 accept\n";
    }

    std::string flags;
    if (config.fail_open)
        flags = "bypass";
    if (config.queue_count > 1 && config.cpu_fanout)
        flags += flags.empty() ? "fanout" : ",fanout";
    // `status` reads this counter: the packets that reached the queue rule.
    text += "\t\tcounter queue ";
    if (!flags.empty())
        text += "flags " + flags + " ";
    text += "to ";
    text += config.queue_count > 1 ? queue_range(config, '-') : std::to_string(config.first_queue);
    text += "\n\t}\n}\n";
    return text;
}

HookResult install_hooks(const HookConfig& config)
{
    HookResult result;
    result.error = validate(config);
    if (!result.error.empty()) {
        result.ok = false;
        return result;
    }

    std::string nft_error;
    if (config.backend != HookBackend::iptables) {
        const std::string script = nft_ruleset_text(config);
        if (nft_check(script, nft_error)) {
            // A chain left by an earlier iptables run would queue packets twice.
            std::string leftover_error;
            if (!remove_iptables_family(false, leftover_error) ||
                !remove_iptables_family(true, leftover_error)) {
                return {false, "cannot remove old iptables hooks: " + leftover_error,
                        HookBackend::nft, {}};
            }
            result = install_nft(script);
            result.backend_reason = config.backend == HookBackend::nft
                                        ? "requested"
                                        : "automatic: nft accepted the queue rules";
            return result;
        }
        if (config.backend == HookBackend::nft) {
            return {false, "nft backend unavailable: " + nft_error, HookBackend::nft, {}};
        }
    }

    std::string leftover_error;
    if (!remove_nft(leftover_error))
        return {false, "cannot remove the old nft table: " + leftover_error,
                HookBackend::iptables, {}};
    result = install_iptables(config);
    result.backend_reason = config.backend == HookBackend::iptables
                                ? "requested"
                                : "automatic: nft cannot load the queue rules, " + nft_error;
    return result;
}

namespace {

std::string counter_error(const std::vector<std::string>& argv, const CommandResult& result)
{
    if (result.exit_code != 0)
        return command_error(argv, result);
    std::string text = "'";
    text += join_command(argv);
    text += "' listed no queue rule with a counter";
    return text;
}

// The number after `word` in `line`, e.g. "-c 12 1400" after "-c ".
std::optional<std::uint64_t> number_after(std::string_view line, std::string_view word)
{
    const std::size_t at = line.find(word);
    if (at == std::string_view::npos)
        return std::nullopt;
    std::uint64_t value = 0;
    std::size_t i = at + word.size();
    const std::size_t start = i;
    for (; i < line.size() && line[i] >= '0' && line[i] <= '9'; ++i)
        value = value * 10 + static_cast<std::uint64_t>(line[i] - '0');
    if (i == start)
        return std::nullopt;
    return value;
}

} // namespace

std::optional<std::uint64_t> sum_queue_rule_packets(std::string_view listing, HookBackend used)
{
    const std::string_view queue_word = used == HookBackend::nft ? " queue " : "-j NFQUEUE";
    const std::string_view counter_word = used == HookBackend::nft ? "counter packets " : "-c ";
    std::uint64_t total = 0;
    bool found = false;
    while (!listing.empty()) {
        const std::size_t end = listing.find('\n');
        const std::string_view line = listing.substr(0, end);
        listing = end == std::string_view::npos ? std::string_view() : listing.substr(end + 1);
        if (line.find(queue_word) == std::string_view::npos)
            continue;
        const std::optional<std::uint64_t> packets = number_after(line, counter_word);
        if (!packets)
            continue;
        total += *packets;
        found = true;
    }
    if (!found)
        return std::nullopt;
    return total;
}

std::optional<std::uint64_t> read_queue_rule_packets(HookBackend used, std::string& error)
{
    // nft lists both families in one chain, while iptables needs one listing each.
    std::vector<std::vector<std::string>> listings;
    if (used == HookBackend::nft) {
        listings.push_back({"nft", "list", "chain", "inet", std::string(nft_table), "input"});
    } else {
        for (const bool ipv6 : {false, true})
            listings.push_back({iptables_tool(ipv6), "-w", "-S", std::string(chain_name), "-v"});
    }

    std::uint64_t total = 0;
    for (const std::vector<std::string>& argv : listings) {
        const CommandResult listed = run_command(argv);
        const auto packets = listed.exit_code == 0 ? sum_queue_rule_packets(listed.output, used)
                                                   : std::nullopt;
        if (!packets) {
            error = counter_error(argv, listed);
            return std::nullopt;
        }
        total += *packets;
    }
    return total;
}

HookResult replace_hooks(const HookConfig& current, const HookConfig& next)
{
    HookResult result;
    result.used = current.backend;
    result.error = validate(next);
    if (!result.error.empty()) {
        result.ok = false;
        return result;
    }
    if (current.backend == HookBackend::nft) {
        // One nft transaction replaces the whole table.
        result = install_nft(nft_ruleset_text(next));
        return result;
    }
    if (!install_iptables_family(next, false, result.error)) {
        result.ok = false;
        return result;
    }
    if (!install_iptables_family(next, true, result.error)) {
        std::string restore_error;
        if (!install_iptables_family(current, false, restore_error))
            result.error += "; putting the old IPv4 rules back also failed: " + restore_error;
        result.ok = false;
    }
    return result;
}

HookResult remove_hooks(const HookConfig& config)
{
    // Both backends are cleaned whatever the config sets, because install_hooks
    // with the automatic backend may have picked either.
    HookResult result;
    result.used = config.backend;
    const auto note_failure = [&result](const std::string& error) {
        result.ok = false;
        result.error += (result.error.empty() ? "" : "; ") + error;
    };
    // Each removal runs even when an earlier one failed, to leave as little
    // behind as possible.
    std::string error;
    if (!remove_iptables_family(false, error))
        note_failure(error);
    error.clear();
    if (!remove_iptables_family(true, error))
        note_failure(error);
    error.clear();
    if (!remove_nft(error))
        note_failure(error);
    return result;
}

} // namespace portwall
