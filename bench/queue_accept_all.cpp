// The benchmark's baseline reader: the project's own QueueReader and hook
// rules with an empty rule table whose policy accepts, so every packet is
// read, decoded and accepted but no rule is tried. The gap between this and
// `portwall run` is the cost of classification and of the daemon around it.
//
//   queue_accept_all QUEUES packet|flow SECONDS
//
// Installs hooks in the current network namespace (run it with
// `ip netns exec`), reads until SECONDS pass or SIGINT/SIGTERM arrives,
// removes the hooks and prints the counters as key=value.
#include "classify/ruleset.hpp"
#include "queue/hooks.hpp"
#include "queue/nfqueue.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace portwall;

struct Totals {
    std::uint64_t packets = 0;
    std::uint64_t enobufs = 0;
    std::uint64_t queue_dropped = 0;
    std::uint64_t user_dropped = 0;
};

// Sleep until the time is up or a stop signal arrives. The signals are
// blocked in every thread, so sigtimedwait is the one place they land.
void wait_for_end(double seconds)
{
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    timespec timeout{static_cast<time_t>(seconds),
                     static_cast<long>((seconds - static_cast<time_t>(seconds)) * 1e9)};
    while (sigtimedwait(&signals, nullptr, &timeout) < 0 && errno == EINTR) {
    }
}

int run(int queues, QueueMode mode, double seconds)
{
    RulesetHolder holder;
    holder.store(std::make_shared<const Ruleset>(RuleTable{}, ClassifierKind::linear, 1));

    std::vector<std::unique_ptr<QueueReader>> readers;
    for (int i = 0; i < queues; ++i) {
        QueueOptions options;
        options.queue = static_cast<std::uint16_t>(i);
        std::string error;
        auto reader = QueueReader::open(options, holder, error);
        if (!reader) {
            std::fprintf(stderr, "queue_accept_all: %s\n", error.c_str());
            return 1;
        }
        readers.push_back(std::move(reader));
    }

    HookConfig hooks;
    hooks.mode = mode;
    hooks.queue_count = static_cast<std::uint16_t>(queues);
    hooks.fail_open = false; // a full queue must show up as drops, not as passed packets
    const HookResult installed = install_hooks(hooks);
    if (!installed.ok) {
        std::fprintf(stderr, "queue_accept_all: installing hooks failed: %s\n",
                     installed.error.c_str());
        return 1;
    }
    std::fprintf(stderr, "queue_accept_all: %d queue(s), %s mode, hooks by %s (%s)\n", queues,
                 std::string(queue_mode_name(mode)).c_str(),
                 std::string(hook_backend_name(installed.used)).c_str(),
                 installed.backend_reason.c_str());

    std::vector<std::thread> threads;
    for (auto& reader : readers)
        threads.emplace_back([&reader] { reader->run(); });
    std::printf("ready\n");
    std::fflush(stdout);

    wait_for_end(seconds);

    Totals totals;
    for (auto& reader : readers) {
        if (const auto stats = read_kernel_queue_stats(reader->queue())) {
            totals.queue_dropped += stats->queue_dropped;
            totals.user_dropped += stats->user_dropped;
        }
    }
    // Remove the hooks before the readers stop, so no packet meets a queue
    // without a reader.
    const HookResult removed = remove_hooks(hooks);
    for (auto& reader : readers)
        reader->stop();
    for (auto& thread : threads)
        thread.join();
    for (auto& reader : readers) {
        totals.packets += reader->counters().packets.load();
        totals.enobufs += reader->counters().enobufs.load();
        if (!reader->error().empty())
            std::fprintf(stderr, "queue_accept_all: queue %u: %s\n", reader->queue(),
                         reader->error().c_str());
    }
    std::printf("verdicted=%llu enobufs=%llu queue_dropped=%llu user_dropped=%llu\n",
                static_cast<unsigned long long>(totals.packets),
                static_cast<unsigned long long>(totals.enobufs),
                static_cast<unsigned long long>(totals.queue_dropped),
                static_cast<unsigned long long>(totals.user_dropped));
    if (!removed.ok) {
        std::fprintf(stderr, "queue_accept_all: removing hooks failed: %s\n",
                     removed.error.c_str());
        return 1;
    }
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 4 || (std::strcmp(argv[2], "packet") != 0 && std::strcmp(argv[2], "flow") != 0)) {
        std::fprintf(stderr, "usage: queue_accept_all QUEUES packet|flow SECONDS\n");
        return 2;
    }
    const int queues = std::atoi(argv[1]);
    if (queues < 1 || queues > 64) {
        std::fprintf(stderr, "queue_accept_all: invalid queue count '%s' (1-64)\n", argv[1]);
        return 2;
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr); // inherited by the reader threads
    const QueueMode mode = std::strcmp(argv[2], "flow") == 0 ? QueueMode::flow : QueueMode::packet;
    return run(queues, mode, std::atof(argv[3]));
}
