#include "control/kernel_queue.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace portwall::control {

std::vector<KernelQueueCounters> parse_kernel_queues(std::string_view text,
                                                     std::size_t& malformed_lines)
{
    std::vector<KernelQueueCounters> queues;
    malformed_lines = 0;
    std::istringstream lines{std::string(text)};
    std::string line;
    while (std::getline(lines, line)) {
        if (line.find_first_not_of(" \t") == std::string::npos)
            continue;
        std::istringstream fields(line);
        KernelQueueCounters counters;
        unsigned constant = 0;
        fields >> counters.queue >> counters.peer_portid >> counters.queue_total >>
            counters.copy_mode >> counters.copy_range >> counters.queue_dropped >>
            counters.user_dropped >> counters.id_sequence >> constant;
        if (!fields) {
            ++malformed_lines;
            continue;
        }
        queues.push_back(counters);
    }
    return queues;
}

std::vector<KernelQueueCounters> read_kernel_queues(std::string& error)
{
    std::ifstream input(kernel_queue_file);
    if (!input) {
        error = std::string("cannot read ") + kernel_queue_file + ": " + std::strerror(errno);
        return {};
    }
    std::ostringstream text;
    text << input.rdbuf();
    std::size_t malformed = 0;
    std::vector<KernelQueueCounters> queues = parse_kernel_queues(text.str(), malformed);
    if (malformed != 0)
        error =
            std::to_string(malformed) + " lines of " + kernel_queue_file + " were not understood";
    return queues;
}

} // namespace portwall::control
