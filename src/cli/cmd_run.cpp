// portwall run: the daemon. It judges the packets netfilter queues to it
// with the rule file, in the foreground, until SIGINT or SIGTERM.
//
// Threads: one reader per queue judges packets. The main thread waits for
// signals through a signalfd, so no work runs in a signal handler. It reloads
// the rule file on SIGHUP, publishes it through the RulesetHolder, and stops
// the readers on SIGINT or SIGTERM.
#include "cli/commands.hpp"

#include "common/log.hpp"
#include "control/server.hpp"
#include "control/service.hpp"
#include "control/state_file.hpp"
#include "queue/conntrack.hpp"
#include "queue/hooks.hpp"
#include "queue/nfqueue.hpp"
#include "rules/compiler.hpp"

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

namespace portwall::cli {

namespace {

struct RunOptions {
    std::string rules_path;
    std::uint16_t queue = 0;
    std::uint16_t queues = 1;
    bool no_hooks = false;
    std::string hook_backend = "auto";
    // Flow mode is the default: established traffic stays in the kernel, and
    // a rule change still cuts the connections it drops (conntrack.hpp).
    std::string mode = "flow";
    std::uint32_t flow_mark = default_flow_mark;
    std::string fail; // empty: the rule file's [daemon] fail, else open
    std::string classifier = "compiled";
    QueueOptions queue_options;
    bool log_debug = false;
    std::string socket_path = control::default_socket_path;
    std::string state_dir = control::default_state_dir;
    std::string control_group; // empty: only root may use the control socket
};

// Closes a file descriptor when it goes out of scope.
class FileDescriptor {
public:
    explicit FileDescriptor(int fd = -1) noexcept : fd_(fd) {}
    ~FileDescriptor()
    {
        if (fd_ >= 0)
            ::close(fd_);
    }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    int get() const noexcept { return fd_; }

private:
    int fd_;
};

// The hook rules of this run: removed when the guard is destroyed, so every
// exit path after a successful install takes them out again.
class HookGuard {
public:
    explicit HookGuard(HookConfig config) : config_(std::move(config)) {}
    ~HookGuard() { remove(); }
    HookGuard(const HookGuard&) = delete;
    HookGuard& operator=(const HookGuard&) = delete;

    HookResult install()
    {
        HookResult result = install_hooks(config_);
        installed_ = result.ok;
        if (result.ok)
            config_.backend = result.used; // remove with the backend that installed
        backend_ = config_.backend;
        return result;
    }

    bool installed() const noexcept { return installed_; }
    // Safe from the control thread: only install() writes it, before that
    // thread may look.
    HookBackend backend() const noexcept { return backend_; }
    const HookConfig& config() const noexcept { return config_; }

    // Swap the installed hooks for `next` (reload). On failure the old hooks
    // stay in force.
    HookResult replace(HookConfig next)
    {
        next.backend = config_.backend;
        HookResult result = replace_hooks(config_, next);
        if (result.ok)
            config_ = std::move(next);
        return result;
    }

    void remove()
    {
        if (!installed_)
            return;
        installed_ = false;
        const HookResult result = remove_hooks(config_);
        if (result.ok)
            LOG_INFO("hooks removed (%s)", std::string(hook_backend_name(config_.backend)).c_str());
        else
            LOG_ERROR("removing the hooks failed: %s", result.error.c_str());
    }

private:
    HookConfig config_;
    HookBackend backend_ = HookBackend::automatic;
    bool installed_ = false;
};

// Read and compile the rule file. Logs every diagnostic (with the source line
// and a caret) and returns nullopt when the file cannot be used.
std::optional<RuleFile> load_rule_file(const std::string& path)
{
    // compile_rules_file reports unreadable and oversized files like `check` does.
    CompileResult result = compile_rules_file(path);
    for (const Diagnostic& diagnostic : result.diagnostics) {
        const LogLevel level =
            diagnostic.severity == Diagnostic::Severity::error ? LogLevel::error : LogLevel::warning;
        // format_diagnostic returns several lines; log them as one message.
        log_message(level, "%s", format_diagnostic(diagnostic, result.source_text).c_str());
    }
    if (!result.ok()) {
        LOG_ERROR("%s: %zu error%s, rule file not loaded", path.c_str(), result.error_count(),
                  result.error_count() == 1 ? "" : "s");
        return std::nullopt;
    }
    return std::move(result.rules);
}

const char* fail_mode_name(bool fail_open)
{
    return fail_open ? "open" : "closed";
}

class Daemon {
public:
    explicit Daemon(const RunOptions& options) : options_(options) {}
    // Joins the reader threads on every path, also when run() throws.
    ~Daemon() { stop_readers(); }
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    int run();

private:
    bool start_readers();
    void stop_readers();
    bool wait_for_signals(int signal_fd);
    void reload();
    void apply_fail_settings(bool fail_open, const std::vector<std::uint16_t>& admin_ports);
    void cut_connections(const Ruleset& rules);
    void report_counters() const;
    void report_rule_counters() const;
    HookConfig hook_config(const RuleFile& rules) const;
    bool start_control(RuleFile rules);
    nlohmann::json control_status() const;
    nlohmann::json fail_mode_count(std::uint64_t received) const;

    const RunOptions& options_;
    ClassifierKind classifier_kind_ = ClassifierKind::compiled;
    // Written by the main thread (start, reload), read by the control thread.
    std::atomic<bool> fail_open_{true};
    std::vector<std::uint16_t> admin_ports_;
    std::uint64_t generation_ = 0;
    RulesetHolder holder_;
    std::vector<std::unique_ptr<QueueReader>> readers_;
    std::vector<std::thread> threads_;
    FileDescriptor reader_exit_{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
    bool reader_failed_ = false;
    control::StateLock state_lock_;
    std::unique_ptr<control::ControlService> control_;
    std::unique_ptr<control::ControlServer> control_server_;
    // Set while the hooks are in place, for the fail-mode counts in `status`.
    std::atomic<HookGuard*> hooks_{nullptr};
};

HookConfig Daemon::hook_config(const RuleFile& rules) const
{
    HookConfig config;
    if (options_.hook_backend == "iptables")
        config.backend = HookBackend::iptables;
    else if (options_.hook_backend == "nft")
        config.backend = HookBackend::nft;
    config.mode = options_.mode == "flow" ? QueueMode::flow : QueueMode::packet;
    config.flow_mark = options_.flow_mark;
    config.first_queue = options_.queue;
    config.queue_count = options_.queues;
    config.fail_open = fail_open_;
    config.admin_ports = rules.admin_ports;
    return config;
}

int Daemon::run()
{
    classifier_kind_ =
        options_.classifier == "linear" ? ClassifierKind::linear : ClassifierKind::compiled;

    std::optional<RuleFile> rules = load_rule_file(options_.rules_path);
    if (!rules)
        return 1;
    // The flag wins over the file. With neither, traffic passes when the
    // daemon cannot judge it, so that a crash does not cut the host off.
    if (!options_.fail.empty())
        fail_open_ = options_.fail == "open";
    else if (rules->fail)
        fail_open_ = *rules->fail == FailMode::open;
    const std::size_t rule_count = rules->table.rules.size();
    const Action policy = rules->table.policy;
    admin_ports_ = rules->admin_ports;
    HookConfig hooks = hook_config(*rules);
    if (!start_control(std::move(*rules)))
        return 1;

    // Block the signals before any thread starts, so that every thread
    // inherits the mask and only the signalfd receives them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    FileDescriptor signal_fd(signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
    if (signal_fd.get() < 0 || reader_exit_.get() < 0) {
        LOG_ERROR("cannot create the signal or event descriptor: %s", std::strerror(errno));
        return 1;
    }

    if (!start_readers())
        return 1;

    HookGuard guard(hooks);
    std::string backend = "none (--no-hooks)";
    if (!options_.no_hooks) {
        const HookResult installed = guard.install();
        if (!installed.ok) {
            LOG_ERROR("installing the hooks failed: %s%s", installed.error.c_str(),
                      hooks.mode == QueueMode::flow
                          ? " (flow mode needs conntrack and connmark matching; --mode packet "
                            "needs neither)"
                          : "");
            stop_readers();
            return 1;
        }
        backend = std::string(hook_backend_name(installed.used));
        if (!installed.backend_reason.empty())
            backend += " (" + installed.backend_reason + ")";
    }

    LOG_INFO("started: queues %u-%u, rules %s, %zu rules, policy %s, mode %s, fail %s, "
             "hooks %s, copy range %u bytes, classifier %s",
             options_.queue, options_.queue + options_.queues - 1, options_.rules_path.c_str(),
             rule_count, std::string(action_name(policy)).c_str(), options_.mode.c_str(),
             fail_mode_name(fail_open_), backend.c_str(), options_.queue_options.copy_range,
             options_.classifier.c_str());

    if (guard.installed())
        hooks_.store(&guard);
    control_server_->start();
    const bool clean = wait_for_signals(signal_fd.get());
    control_server_->stop();
    hooks_.store(nullptr);

    // Hooks first, so that no new packet is queued while the readers drain.
    guard.remove();
    stop_readers();
    report_counters();
    LOG_INFO("stopped%s", clean ? "" : " after an error");
    return clean && !reader_failed_ ? 0 : 1;
}

bool Daemon::start_readers()
{
    for (std::uint16_t i = 0; i < options_.queues; ++i) {
        QueueOptions queue_options = options_.queue_options;
        queue_options.queue = static_cast<std::uint16_t>(options_.queue + i);
        queue_options.fail_open = fail_open_;
        std::string error;
        auto reader = QueueReader::open(queue_options, holder_, error);
        if (!reader) {
            LOG_ERROR("%s", error.c_str());
            stop_readers();
            return false;
        }
        readers_.push_back(std::move(reader));
    }
    for (auto& reader : readers_) {
        threads_.emplace_back([this, &reader] {
            if (reader->run())
                return;
            LOG_ERROR("queue %u: reader stopped: %s", reader->queue(), reader->error().c_str());
            const std::uint64_t one = 1;
            [[maybe_unused]] const ssize_t written = ::write(reader_exit_.get(), &one, sizeof one);
        });
    }
    return true;
}

void Daemon::stop_readers()
{
    for (auto& reader : readers_)
        reader->stop();
    for (auto& thread : threads_)
        thread.join();
    threads_.clear();
}

// Serve signals until SIGINT or SIGTERM (returns true) or until a reader
// fails (returns false).
bool Daemon::wait_for_signals(int signal_fd)
{
    pollfd watched[2] = {{signal_fd, POLLIN, 0}, {reader_exit_.get(), POLLIN, 0}};
    for (;;) {
        if (poll(watched, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            LOG_ERROR("poll failed: %s", std::strerror(errno));
            return false;
        }
        if (watched[1].revents & POLLIN) {
            reader_failed_ = true;
            return false;
        }
        signalfd_siginfo info{};
        while (::read(signal_fd, &info, sizeof info) == sizeof info) {
            if (info.ssi_signo == SIGHUP) {
                reload();
                continue;
            }
            LOG_INFO("received %s, stopping", strsignal(static_cast<int>(info.ssi_signo)));
            return true;
        }
    }
}

void Daemon::reload()
{
    LOG_INFO("received SIGHUP, reloading %s", options_.rules_path.c_str());
    std::optional<RuleFile> rules = load_rule_file(options_.rules_path);
    if (!rules) {
        LOG_ERROR("reload failed: the previous rules stay in force (generation %" PRIu64 ")",
                  generation_);
        return;
    }
    // --fail wins over the file, as at start. Without either, fail open.
    bool next_fail_open = fail_open_;
    if (options_.fail.empty())
        next_fail_open = !rules->fail || *rules->fail == FailMode::open;
    const std::vector<std::uint16_t> next_admin_ports = rules->admin_ports;

    const std::size_t rule_count = rules->table.rules.size();
    const Action policy = rules->table.policy;
    // The control service merges the CLI rules back in, publishes, and (in
    // flow mode) cuts the connections the new rules drop.
    std::string error;
    if (!control_->reload_file(std::move(*rules), options_.rules_path, error)) {
        LOG_ERROR("%s", error.c_str());
        return;
    }
    generation_ = holder_.generation();
    LOG_INFO("reloaded %s: %zu rules, %zu CLI rules kept, policy %s, generation %" PRIu64,
             options_.rules_path.c_str(), rule_count, control_->cli_rule_count(),
             std::string(action_name(policy)).c_str(), generation_);
    if (next_fail_open != fail_open_ || next_admin_ports != admin_ports_)
        apply_fail_settings(next_fail_open, next_admin_ports);
}

std::string port_list(const std::vector<std::uint16_t>& ports)
{
    std::string text;
    for (const std::uint16_t port : ports)
        text += (text.empty() ? "" : ",") + std::to_string(port);
    return text.empty() ? "none" : text;
}

// Apply a reloaded [daemon] fail or admin_ports. Both live in the hook rules,
// and the fail mode also in each queue's flags. The hooks are swapped first. If
// that fails, nothing changes, and the new rules stay in force without it.
void Daemon::apply_fail_settings(bool fail_open, const std::vector<std::uint16_t>& admin_ports)
{
    if (HookGuard* hooks = hooks_.load()) {
        HookConfig next = hooks->config();
        next.fail_open = fail_open;
        next.admin_ports = admin_ports;
        const HookResult replaced = hooks->replace(next);
        if (!replaced.ok) {
            LOG_ERROR("reload: the hooks could not be changed, so fail %s and admin ports %s "
                      "stay in force: %s",
                      fail_mode_name(fail_open_), port_list(admin_ports_).c_str(),
                      replaced.error.c_str());
            return;
        }
    }
    if (fail_open != fail_open_) {
        for (const auto& reader : readers_)
            reader->set_fail_open(fail_open);
    }
    fail_open_ = fail_open;
    admin_ports_ = admin_ports;
    LOG_INFO("reload: fail %s, admin ports %s", fail_mode_name(fail_open),
             port_list(admin_ports).c_str());
}

// Load the state after the rule file, publish the merged rules, and open the
// control socket. A corrupt state file stops the start: the daemon would
// otherwise filter with rules the admin did not mean.
bool Daemon::start_control(RuleFile rules)
{
    std::string error;
    if (!state_lock_.acquire(options_.state_dir, error)) {
        LOG_ERROR("state: %s", error.c_str());
        return false;
    }
    control::ServerOptions server_options;
    server_options.socket_path = options_.socket_path;
    if (!options_.control_group.empty()) {
        server_options.control_group = control::lookup_group(options_.control_group, error);
        if (!server_options.control_group) {
            LOG_ERROR("%s", error.c_str());
            return false;
        }
    }

    control_ = std::make_unique<control::ControlService>(&holder_, options_.state_dir,
                                                         classifier_kind_);
    control::ServiceHooks service_hooks;
    service_hooks.daemon_status = [this] { return control_status(); };
    if (options_.mode == "flow") {
        service_hooks.after_publish = [this](const Ruleset& published) {
            cut_connections(published);
            return std::string();
        };
    }
    control_->set_hooks(std::move(service_hooks));
    if (!control_->start(std::move(rules), options_.rules_path,
                         control::load_state(options_.state_dir), error)) {
        LOG_ERROR("%s", error.c_str());
        return false;
    }
    generation_ = holder_.generation();

    control_server_ = std::make_unique<control::ControlServer>(*control_, server_options);
    if (!control_server_->open(error)) {
        LOG_ERROR("%s", error.c_str());
        return false;
    }
    return true;
}

// Packets that reached the queue rule but never reached a reader: the kernel
// passed them (fail open) or dropped them (fail closed) because a queue was
// full or a netlink message could not be delivered. The count is the queue
// rule's packets less those the readers took and those still waiting. The
// counters are read at slightly different moments, so the figure can be off
// by the packets in flight. Null when the hooks are not ours or cannot be read.
nlohmann::json Daemon::fail_mode_count(std::uint64_t received) const
{
    const HookGuard* hooks = hooks_.load();
    if (hooks == nullptr)
        return nullptr;
    std::string error;
    const std::optional<std::uint64_t> reached = read_queue_rule_packets(hooks->backend(), error);
    if (!reached) {
        LOG_WARNING("status: cannot read the queue rule counters: %s", error.c_str());
        return nullptr;
    }
    // One read of the kernel's queue list. An unreadable list counts as none waiting.
    std::string kernel_error;
    std::uint64_t waiting = 0;
    for (const KernelQueueStats& kernel : read_all_kernel_queue_stats(kernel_error)) {
        const unsigned last = unsigned{options_.queue} + options_.queues - 1u;
        if (kernel.queue >= options_.queue && kernel.queue <= last)
            waiting += kernel.waiting;
    }
    return *reached > received + waiting ? *reached - received - waiting : 0;
}

// Daemon-wide counters for `portwall status`, summed over the queues.
nlohmann::json Daemon::control_status() const
{
    std::uint64_t packets = 0, accepted = 0, dropped = 0, malformed = 0, enobufs = 0;
    for (const auto& reader : readers_) {
        const QueueCounters& c = reader->counters();
        packets += c.packets.load(std::memory_order_relaxed);
        accepted += c.accepted.load(std::memory_order_relaxed);
        dropped += c.dropped.load(std::memory_order_relaxed);
        malformed += c.malformed_total();
        enobufs += c.enobufs.load(std::memory_order_relaxed);
    }
    const nlohmann::json not_queued = fail_mode_count(packets);
    return {
        {"packets", packets},
        {"accepted", accepted},
        {"dropped", dropped},
        {"malformed", malformed},
        {"enobufs", enobufs},
        {"queues", std::to_string(options_.queue) + "-" +
                       std::to_string(options_.queue + options_.queues - 1)},
        {"mode", options_.mode},
        {"fail", fail_mode_name(fail_open_)},
        {fail_open_ ? "passed_by_fail_open" : "dropped_by_fail_closed", not_queued},
        {"if_daemon_dies", fail_open_ ? "traffic passes (fail open)"
                                          : "traffic stops, except the rule file's admin ports "
                                            "(fail closed)"},
    };
}

// In flow mode established connections bypass the queue, so a new rule would
// not stop one that is already open. Marking its conntrack entry sends all
// its later packets back to the queue, where the rules in force judge them.
void Daemon::cut_connections(const Ruleset& rules)
{
    const ConntrackCutResult cut = cut_dropped_connections(rules, options_.flow_mark);
    if (!cut.ok)
        LOG_ERROR("cutting connections that the new rules drop failed: %s", cut.error.c_str());
    LOG_INFO("conntrack: %zu entries examined, %zu judged, %zu cut, %zu restored, %zu vanished",
             cut.examined, cut.judged, cut.cut, cut.restored, cut.vanished);
    for (const std::string& example : cut.examples)
        LOG_INFO("conntrack: %s", example.c_str());
}

void Daemon::report_counters() const
{
    for (const auto& reader : readers_) {
        const QueueCounters& c = reader->counters();
        const auto get = [](const QueueCounters::Counter& counter) {
            return static_cast<unsigned long long>(counter.load(std::memory_order_relaxed));
        };
        LOG_INFO("queue %u counters: packets=%llu accepted=%llu dropped=%llu malformed=%llu "
                 "missing_payload=%llu no_ruleset=%llu enobufs=%llu verdict_errors=%llu "
                 "truncated_messages=%llu unusable_messages=%llu verdict_messages=%llu "
                 "batch_verdict_messages=%llu batches=%llu",
                 reader->queue(), get(c.packets), get(c.accepted), get(c.dropped),
                 static_cast<unsigned long long>(c.malformed_total()), get(c.missing_payload),
                 get(c.no_ruleset), get(c.enobufs), get(c.verdict_errors),
                 get(c.truncated_messages), get(c.unusable_messages), get(c.verdict_messages),
                 get(c.batch_verdict_messages), get(c.batches));
        for (std::size_t i = 1; i < decode_status_count; ++i) {
            const auto count = get(c.malformed[i]);
            if (count != 0)
                LOG_INFO("queue %u malformed %s=%llu", reader->queue(),
                         std::string(decode_status_name(static_cast<DecodeStatus>(i))).c_str(),
                         count);
        }
        // Read while the queue is still bound, because the kernel removes its
        // counters at unbind.
        if (const auto kernel = read_kernel_queue_stats(reader->queue()))
            LOG_INFO("queue %u kernel: waiting=%" PRIu64 " queue_dropped=%" PRIu64
                     " user_dropped=%" PRIu64 " last_packet_id=%" PRIu64,
                     reader->queue(), kernel->waiting, kernel->queue_dropped,
                     kernel->user_dropped, kernel->last_packet_id);
    }
    report_rule_counters();
}

void Daemon::report_rule_counters() const
{
    const auto ruleset = holder_.load();
    if (!ruleset)
        return;
    const RuleTable& table = ruleset->table();
    for (std::size_t i = 0; i < table.rules.size(); ++i) {
        const HitCounter& hits = ruleset->rule_counter(i);
        LOG_INFO("rule %s (%s): packets=%" PRIu64 " bytes=%" PRIu64,
                 rule_display_name(table, i).c_str(),
                 std::string(action_name(table.rules[i].action)).c_str(),
                 hits.packets.load(std::memory_order_relaxed),
                 hits.bytes.load(std::memory_order_relaxed));
    }
    const HitCounter& policy = ruleset->policy_counter();
    LOG_INFO("policy (%s): packets=%" PRIu64 " bytes=%" PRIu64,
             std::string(action_name(table.policy)).c_str(),
             policy.packets.load(std::memory_order_relaxed),
             policy.bytes.load(std::memory_order_relaxed));
}

void add_queue_options(CLI::App& command, RunOptions& options)
{
    QueueOptions& queue = options.queue_options;
    command.add_option("--copy-range", queue.copy_range,
                       "bytes of each packet copied to userspace for decoding (headers only; "
                       "a header beyond it counts as ports not captured)")
        ->check(CLI::Range(64u, 65535u))
        ->capture_default_str();
    command.add_option("--queue-maxlen", queue.max_length,
                       "packets the kernel holds per queue while waiting for verdicts; when "
                       "full, the fail mode decides")
        ->check(CLI::Range(1u, 1u << 24))
        ->capture_default_str();
    command.add_option("--rcvbuf", queue.receive_buffer,
                       "netlink socket receive buffer per queue, in bytes")
        ->check(CLI::Range(65536, 1 << 30))
        ->capture_default_str();
    command.add_option("--batch", queue.batch_size,
                       "packet messages read per system call (recvmmsg) and judged per batch")
        ->check(CLI::Range(1u, 1024u))
        ->capture_default_str();
    command.add_flag("!--no-batch-verdicts", queue.batch_verdicts,
                     "send one verdict message per packet instead of one per run of equal "
                     "verdicts (NFQNL_MSG_VERDICT_BATCH)");
}

} // namespace

void add_run_command(CLI::App& app, int& exit_status)
{
    auto options = std::make_shared<RunOptions>();
    CLI::App* command = app.add_subcommand(
        "run", "Filter the packets queued to portwall (NFQUEUE) with a rule file, in the "
               "foreground. Needs root (CAP_NET_ADMIN). SIGHUP reloads the rule file; SIGINT "
               "and SIGTERM stop the daemon, remove its hooks and print its counters.");
    command->add_option("--rules", options->rules_path, "TOML rule file")
        ->required()
        ->type_name("FILE");
    command->add_option("--queue", options->queue, "number of the first NFQUEUE queue")
        ->check(CLI::Range(0, 65535))
        ->capture_default_str();
    command->add_option("--queues", options->queues,
                        "number of queues, one reader thread each, starting at --queue; the "
                        "hooks spread flows over them")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    command->add_flag("--no-hooks", options->no_hooks,
                      "install no netfilter rules; the admin sends packets to the queue");
    command->add_option("--hook-backend", options->hook_backend,
                        "tool that installs the hooks: auto, iptables or nft")
        ->check(CLI::IsMember({"auto", "iptables", "nft"}))
        ->capture_default_str();
    command->add_option("--mode", options->mode,
                        "flow: queue only packets that conntrack does not place in a known "
                        "connection, and send connections that a rule change drops back to the "
                        "queue; packet: queue every packet (no conntrack needed)")
        ->check(CLI::IsMember({"packet", "flow"}))
        ->capture_default_str();
    command->add_option("--flow-mark", options->flow_mark,
                        "flow mode: the conntrack mark bit (one bit, e.g. 0x400000) that sends "
                        "every packet of a connection cut by a rule change to the queue")
        ->check([](const std::string& text) {
            std::uint32_t mark = 0;
            return CLI::detail::lexical_cast(text, mark) && valid_flow_mark(mark)
                       ? std::string()
                       : "must be a number with exactly one bit set, e.g. 0x400000";
        })
        ->capture_default_str();
    command->add_option("--fail", options->fail,
                        "open: packets pass when no reader takes them (daemon gone or queue "
                        "full); closed: they are dropped. Default: the rule file's [daemon] "
                        "fail, else open")
        ->check(CLI::IsMember({"open", "closed"}));
    command->add_option("--classifier", options->classifier,
                        "rule lookup: compiled, or linear (the reference)")
        ->check(CLI::IsMember({"compiled", "linear"}))
        ->capture_default_str();
    add_queue_options(*command, *options);
    command->add_flag("--debug", options->log_debug, "log debug messages");
    command->add_option("--socket", options->socket_path, "control socket for block, list, ...")
        ->capture_default_str();
    command->add_option("--state-dir", options->state_dir,
                        "directory of the state file that keeps the CLI rules across restarts")
        ->capture_default_str();
    command->add_option("--control-group", options->control_group,
                        "group (name or numeric gid) whose members may use the control socket "
                        "besides root; checked against the client's own groups")
        ->type_name("GROUP");

    command->callback([options, &exit_status] {
        if (options->queue + options->queues - 1 > 65535) {
            LOG_ERROR("--queue %u with --queues %u goes past queue 65535", options->queue,
                      options->queues);
            exit_status = 2;
            return;
        }
        if (options->log_debug)
            set_log_level(LogLevel::debug);
        Daemon daemon(*options);
        try {
            exit_status = daemon.run();
        } catch (const std::exception& error) {
            // Destructors have removed the hooks by now.
            LOG_ERROR("stopped: %s", error.what());
            exit_status = 1;
        }
    });
}

} // namespace portwall::cli
