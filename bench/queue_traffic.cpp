// Traffic for the queue benchmark: a bounded UDP sender (sendmmsg), a UDP
// receiver that counts datagrams (recvmmsg), and a bounded TCP stream with
// its receiver. Every mode stops by itself after its time or packet limit.
//
//   queue_traffic udp-send ADDRESS PORT SECONDS [FLOWS] [MAX_PACKETS] [PAYLOAD_BYTES]
//   queue_traffic udp-recv PORT SECONDS
//   queue_traffic tcp-send ADDRESS PORT SECONDS
//   queue_traffic tcp-recv PORT SECONDS
//   queue_traffic tcp-connect ADDRESS PORT SECONDS
//
// Each prints one line of key=value figures on stdout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr int batch_size = 64;
constexpr std::size_t max_payload = 1400;

double seconds_since(Clock::time_point start)
{
    return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void fail(const char* what)
{
    std::fprintf(stderr, "queue_traffic: %s failed: %s\n", what, std::strerror(errno));
    std::exit(1);
}

// Parse an IPv4 or IPv6 address and port into `address`; returns its length.
socklen_t make_address(const char* text, int port, sockaddr_storage& address)
{
    std::memset(&address, 0, sizeof address);
    auto* inet = reinterpret_cast<sockaddr_in*>(&address);
    if (inet_pton(AF_INET, text, &inet->sin_addr) == 1) {
        inet->sin_family = AF_INET;
        inet->sin_port = htons(static_cast<std::uint16_t>(port));
        return sizeof(sockaddr_in);
    }
    auto* inet6 = reinterpret_cast<sockaddr_in6*>(&address);
    if (inet_pton(AF_INET6, text, &inet6->sin6_addr) == 1) {
        inet6->sin6_family = AF_INET6;
        inet6->sin6_port = htons(static_cast<std::uint16_t>(port));
        return sizeof(sockaddr_in6);
    }
    std::fprintf(stderr, "queue_traffic: invalid address '%s'\n", text);
    std::exit(2);
}

// A socket bound to the wildcard address of both families on `port`.
int listen_socket(int type, int port)
{
    const int fd = socket(AF_INET6, type, 0);
    if (fd < 0)
        fail("socket");
    const int off = 0;
    const int on = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    const int buffer = 32 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_any;
    address.sin6_port = htons(static_cast<std::uint16_t>(port));
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
        fail("bind");
    if (type == SOCK_STREAM && listen(fd, 512) != 0)
        fail("listen");
    return fd;
}

// Wait up to `milliseconds` for `fd` to become readable.
bool wait_readable(int fd, int milliseconds)
{
    pollfd entry{fd, POLLIN, 0};
    return poll(&entry, 1, milliseconds) > 0;
}

int udp_send(const char* host, int port, double seconds, int flows, long max_packets,
             std::size_t payload)
{
    sockaddr_storage address;
    const socklen_t length = make_address(host, port, address);

    // One connected socket per flow: each has its own source port, so the
    // flows hash to different queues when several are balanced.
    std::vector<int> sockets;
    for (int i = 0; i < flows; ++i) {
        const int fd = socket(address.ss_family, SOCK_DGRAM, 0);
        if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&address), length) != 0)
            fail("udp socket");
        sockets.push_back(fd);
    }

    char data[max_payload] = {};
    iovec vector{data, payload};
    mmsghdr messages[batch_size] = {};
    for (mmsghdr& message : messages) {
        message.msg_hdr.msg_iov = &vector;
        message.msg_hdr.msg_iovlen = 1;
    }

    long sent = 0;
    long failed = 0;
    const auto start = Clock::now();
    for (std::size_t turn = 0; seconds_since(start) < seconds && sent < max_packets; ++turn) {
        const long want = std::min<long>(batch_size, max_packets - sent);
        const int done = sendmmsg(sockets[turn % sockets.size()], messages,
                                  static_cast<unsigned>(want), MSG_DONTWAIT);
        if (done > 0)
            sent += done;
        else
            ++failed; // ENOBUFS or EAGAIN from a full device queue: try the next flow
    }
    const double elapsed = seconds_since(start);
    std::printf("sent=%ld seconds=%.3f pps=%.0f send_failures=%ld\n", sent, elapsed,
                static_cast<double>(sent) / elapsed, failed);
    return 0;
}

int udp_receive(int port, double seconds)
{
    const int fd = listen_socket(SOCK_DGRAM, port);
    std::printf("ready\n");
    std::fflush(stdout);

    static char buffers[batch_size][2048];
    iovec vectors[batch_size];
    mmsghdr messages[batch_size] = {};
    for (int i = 0; i < batch_size; ++i) {
        vectors[i] = {buffers[i], sizeof buffers[i]};
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }

    // The rate is taken between the first and the last datagram, so waiting
    // for the sender to start does not lower it.
    long received = 0;
    Clock::time_point first;
    Clock::time_point last;
    const auto start = Clock::now();
    while (seconds_since(start) < seconds) {
        if (!wait_readable(fd, 100))
            continue;
        const int got = recvmmsg(fd, messages, batch_size, MSG_DONTWAIT, nullptr);
        if (got <= 0)
            continue;
        last = Clock::now();
        if (received == 0)
            first = last;
        received += got;
    }
    const double active = std::chrono::duration<double>(last - first).count();
    std::printf("received=%ld active_seconds=%.3f pps=%.0f\n", received, active,
                active > 0 ? static_cast<double>(received) / active : 0.0);
    return 0;
}

int tcp_send(const char* host, int port, double seconds)
{
    sockaddr_storage address;
    const socklen_t length = make_address(host, port, address);
    const int fd = socket(address.ss_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&address), length) != 0)
        fail("tcp connect");
    static char data[256 * 1024];
    long long sent = 0;
    const auto start = Clock::now();
    while (seconds_since(start) < seconds) {
        const ssize_t done = send(fd, data, sizeof data, MSG_NOSIGNAL);
        if (done <= 0)
            fail("tcp send");
        sent += done;
    }
    const double elapsed = seconds_since(start);
    close(fd);
    std::printf("sent_bytes=%lld seconds=%.3f mbit_per_s=%.1f\n", sent, elapsed,
                static_cast<double>(sent) * 8 / elapsed / 1e6);
    return 0;
}

int tcp_receive(int port, double seconds)
{
    const int listener = listen_socket(SOCK_STREAM, port);
    std::printf("ready\n");
    std::fflush(stdout);
    long long received = 0;
    long connections = 0;
    Clock::time_point first;
    Clock::time_point last;
    const auto start = Clock::now();
    static char buffer[256 * 1024];
    while (seconds_since(start) < seconds) {
        if (!wait_readable(listener, 100))
            continue;
        const int fd = accept(listener, nullptr, nullptr);
        if (fd < 0)
            continue;
        ++connections;
        while (seconds_since(start) < seconds) {
            if (!wait_readable(fd, 100))
                continue;
            const ssize_t got = recv(fd, buffer, sizeof buffer, 0);
            if (got <= 0)
                break;
            last = Clock::now();
            if (received == 0)
                first = last;
            received += got;
        }
        close(fd);
    }
    const double active = std::chrono::duration<double>(last - first).count();
    std::printf("received_bytes=%lld connections=%ld active_seconds=%.3f mbit_per_s=%.1f\n",
                received, connections, active,
                active > 0 ? static_cast<double>(received) * 8 / active / 1e6 : 0.0);
    return 0;
}

// Open and close connections one after another; the receiver side is any
// listener (tcp-recv). Measures connections per second, each one a SYN
// that flow mode sends to the queue.
int tcp_connect(const char* host, int port, double seconds)
{
    sockaddr_storage address;
    const socklen_t length = make_address(host, port, address);
    long opened = 0;
    long failed = 0;
    const auto start = Clock::now();
    while (seconds_since(start) < seconds) {
        const int fd = socket(address.ss_family, SOCK_STREAM, 0);
        if (fd < 0)
            fail("socket");
        // RST on close, so the client side does not fill up with TIME_WAIT.
        const linger reset{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        if (connect(fd, reinterpret_cast<sockaddr*>(&address), length) == 0)
            ++opened;
        else
            ++failed;
        close(fd);
    }
    const double elapsed = seconds_since(start);
    std::printf("connections=%ld failed=%ld seconds=%.3f per_s=%.0f\n", opened, failed, elapsed,
                static_cast<double>(opened) / elapsed);
    return 0;
}

[[noreturn]] void usage()
{
    std::fprintf(stderr,
                 "usage: queue_traffic udp-send ADDRESS PORT SECONDS [FLOWS] [MAX_PACKETS] "
                 "[PAYLOAD_BYTES]\n"
                 "       queue_traffic udp-recv PORT SECONDS\n"
                 "       queue_traffic tcp-send ADDRESS PORT SECONDS\n"
                 "       queue_traffic tcp-recv PORT SECONDS\n"
                 "       queue_traffic tcp-connect ADDRESS PORT SECONDS\n");
    std::exit(2);
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 4)
        usage();
    const std::string mode = argv[1];
    if (mode == "udp-recv")
        return udp_receive(std::atoi(argv[2]), std::atof(argv[3]));
    if (mode == "tcp-recv")
        return tcp_receive(std::atoi(argv[2]), std::atof(argv[3]));
    if (argc < 5)
        usage();
    const char* host = argv[2];
    const int port = std::atoi(argv[3]);
    const double seconds = std::atof(argv[4]);
    if (mode == "udp-send") {
        const int flows = argc > 5 ? std::max(1, std::atoi(argv[5])) : 8;
        const long max_packets = argc > 6 ? std::atol(argv[6]) : 50'000'000;
        const std::size_t payload =
            argc > 7 ? std::min<std::size_t>(std::atol(argv[7]), max_payload) : 18;
        return udp_send(host, port, seconds, flows, max_packets, payload);
    }
    if (mode == "tcp-send")
        return tcp_send(host, port, seconds);
    if (mode == "tcp-connect")
        return tcp_connect(host, port, seconds);
    usage();
}
