#include "control/server.hpp"

#include "common/log.hpp"

#include <cerrno>
#include <cstring>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <vector>

namespace portwall::control {

namespace {

// Refused and malformed requests are logged through this limiter: a local
// user looping on the socket must not flood the daemon's log.
RateLimiter request_log_limiter(10, 100, std::chrono::minutes(10));

void log_rejected(const char* what, const ucred& peer, const std::string& detail)
{
    const RateLimiter::Decision decision = request_log_limiter.check(RateLimiter::Clock::now());
    if (!decision.log)
        return;
    LOG_WARNING("control: %s from uid %u pid %d: %s (%llu similar messages suppressed)", what,
                static_cast<unsigned>(peer.uid), static_cast<int>(peer.pid), detail.c_str(),
                static_cast<unsigned long long>(decision.suppressed));
}

bool fill_address(const std::string& path, sockaddr_un& address, std::string& error)
{
    address = {};
    address.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof address.sun_path) {
        error = "socket path \"" + path + "\" must be 1 to " +
                std::to_string(sizeof address.sun_path - 1) + " bytes long";
        return false;
    }
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return true;
}

// Whether a daemon accepts connections on `path` right now.
bool someone_listens(const sockaddr_un& address)
{
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    const bool connected =
        ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return connected;
}

bool write_all(int fd, std::string_view data)
{
    while (!data.empty()) {
        const ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0)
            return false;
        data.remove_prefix(static_cast<std::size_t>(sent));
    }
    return true;
}

// Reads one request line. Returns false with `error` when it is too long or
// the peer stops sending before a newline and before closing its side.
bool read_request(int fd, std::string& line, std::string& error)
{
    char buffer[4096];
    while (line.find('\n') == std::string::npos) {
        const ssize_t received = ::recv(fd, buffer, sizeof buffer, 0);
        if (received < 0 && errno == EINTR)
            continue;
        if (received < 0) {
            error = errno == EAGAIN ? "request not received in time" : std::strerror(errno);
            return false;
        }
        if (received == 0)
            break;
        line.append(buffer, static_cast<std::size_t>(received));
        if (line.size() > max_request_bytes) {
            error = "request is longer than " + std::to_string(max_request_bytes) + " bytes";
            return false;
        }
    }
    line.resize(std::min(line.size(), line.find('\n')));
    return true;
}

// Reads and drops what the peer still sends after an oversized request, up
// to EOF, a timeout or 1 MiB. Closing a socket with unread input sends a
// reset, which can destroy the error reply before the client reads it.
void discard_input(int fd)
{
    ::shutdown(fd, SHUT_WR);
    char buffer[4096];
    for (std::size_t total = 0; total < 1024 * 1024;) {
        const ssize_t received = ::recv(fd, buffer, sizeof buffer, 0);
        if (received <= 0)
            return;
        total += static_cast<std::size_t>(received);
    }
}

// Time spent draining a refused peer's unread input before the socket is
// closed. Draining keeps the peer's read of the error reply from failing
// with ECONNRESET.
constexpr std::chrono::milliseconds refused_peer_timeout{100};

std::string format_groups(const std::vector<gid_t>& groups)
{
    if (groups.empty())
        return "none";
    std::string text;
    for (const gid_t group : groups) {
        if (!text.empty())
            text += ',';
        text += std::to_string(group);
    }
    return text;
}

// The peer's supplementary groups as the kernel recorded them at connect(2).
// Only a kernel without SO_PEERGROUPS (before Linux 4.13) falls back to the
// group database, and that fallback is logged once. The database is wrong
// for a process whose groups differ from its user's entry (setpriv, su -g,
// containers).
std::vector<gid_t> peer_supplementary_groups(int fd, const ucred& peer)
{
    int error_number = 0;
    if (std::optional<std::vector<gid_t>> groups = read_peer_groups(fd, error_number))
        return std::move(*groups);
    if (error_number == ENOPROTOOPT) {
        static std::once_flag logged;
        std::call_once(logged, [] {
            LOG_WARNING("control: this kernel has no SO_PEERGROUPS, so supplementary groups of "
                        "control clients come from the group database instead");
        });
        return database_groups(peer.uid);
    }
    // Any other failure grants no group, so only root and the primary gid
    // are checked.
    log_rejected("SO_PEERGROUPS failed", peer, std::strerror(error_number));
    return {};
}

void set_timeouts(int fd, std::chrono::milliseconds timeout)
{
    timeval value{};
    value.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    value.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, sizeof value);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, sizeof value);
}

} // namespace

std::optional<gid_t> lookup_group(const std::string& name, std::string& error)
{
    const bool is_number = !name.empty() && name.size() <= 9 &&
                           name.find_first_not_of("0123456789") == std::string::npos;
    if (is_number)
        return static_cast<gid_t>(std::stoul(name));

    std::vector<char> buffer(16384);
    group entry{};
    group* found = nullptr;
    const int status = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (status != 0 || found == nullptr) {
        error = "control group \"" + name + "\" not found" +
                (status != 0 ? std::string(": ") + std::strerror(status) : "") +
                "; give an existing group name or a numeric gid";
        return std::nullopt;
    }
    return found->gr_gid;
}

std::optional<std::vector<gid_t>> read_peer_groups(int fd, int& error_number)
{
    // When the buffer is too small, the kernel fails with ERANGE and sets
    // `length` to the size it needs. A process may have up to NGROUPS_MAX
    // (65536) groups, so the buffer grows to that size for one retry.
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 2; ++attempt) {
        socklen_t length = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &length) == 0) {
            groups.resize(length / sizeof(gid_t));
            return groups;
        }
        error_number = errno;
        if (error_number != ERANGE)
            return std::nullopt;
        groups.resize(length / sizeof(gid_t) + 1);
    }
    return std::nullopt;
}

std::vector<gid_t> database_groups(uid_t uid)
{
    std::vector<char> buffer(16384);
    passwd entry{};
    passwd* found = nullptr;
    if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr)
        return {};
    int count = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    if (::getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) {
        groups.resize(static_cast<std::size_t>(count));
        if (::getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0)
            return {};
    }
    groups.resize(static_cast<std::size_t>(count));
    return groups;
}

bool peer_allowed(uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                  std::optional<gid_t> control_group)
{
    if (uid == 0)
        return true;
    if (!control_group)
        return false;
    if (gid == *control_group)
        return true;
    return std::find(groups.begin(), groups.end(), *control_group) != groups.end();
}

ControlServer::ControlServer(ControlService& service, ServerOptions options)
    : service_(service), options_(std::move(options))
{
}

ControlServer::~ControlServer()
{
    stop();
}

bool ControlServer::open(std::string& error)
{
    sockaddr_un address{};
    if (!fill_address(options_.socket_path, address, error))
        return false;

    const std::filesystem::path directory =
        std::filesystem::path(options_.socket_path).parent_path();
    std::error_code code;
    if (!directory.empty() && !std::filesystem::exists(directory, code)) {
        std::filesystem::create_directories(directory, code);
        if (code) {
            error = "creating " + directory.string() + " failed: " + code.message();
            return false;
        }
        ::chmod(directory.c_str(), 0755);
    }

    struct stat existing {};
    if (::lstat(options_.socket_path.c_str(), &existing) == 0) {
        if (!S_ISSOCK(existing.st_mode)) {
            error = options_.socket_path + " exists and is not a socket; remove it or pick "
                                           "another --socket";
            return false;
        }
        if (someone_listens(address)) {
            error = "another portwall daemon already serves " + options_.socket_path;
            return false;
        }
        ::unlink(options_.socket_path.c_str()); // left behind by a daemon that died
    }

    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    const bool ok =
        listen_fd_ >= 0 && wake_fd_ >= 0 &&
        ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 &&
        ::chmod(options_.socket_path.c_str(), 0666) == 0 && ::listen(listen_fd_, 64) == 0;
    if (!ok) {
        error =
            "opening control socket " + options_.socket_path + " failed: " + std::strerror(errno);
        return false;
    }
    LOG_INFO("control: listening on %s", options_.socket_path.c_str());
    return true;
}

void ControlServer::start()
{
    thread_ = std::thread([this] { serve(); });
}

void ControlServer::stop()
{
    if (thread_.joinable()) {
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t written = ::write(wake_fd_, &one, sizeof one);
        thread_.join();
    }
    if (listen_fd_ >= 0) {
        ::close(listen_fd_);
        ::unlink(options_.socket_path.c_str());
        listen_fd_ = -1;
    }
    if (wake_fd_ >= 0) {
        ::close(wake_fd_);
        wake_fd_ = -1;
    }
}

void ControlServer::serve()
{
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    for (;;) {
        // Wake for a pending --confirm deadline, or at least once a second.
        int timeout_ms = 1000;
        if (const auto deadline = service_.confirm_deadline()) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                *deadline - ControlService::Clock::now());
            timeout_ms = static_cast<int>(std::clamp<long long>(left.count() + 1, 0, 1000));
        }
        const int ready = ::poll(fds, 2, timeout_ms);
        if (ready < 0 && errno != EINTR) {
            LOG_ERROR("control: poll on the control socket failed: %s", std::strerror(errno));
            return;
        }
        service_.expire_confirm(ControlService::Clock::now());
        if (fds[1].revents != 0)
            return;
        if (ready <= 0 || (fds[0].revents & POLLIN) == 0)
            continue;

        const int connection = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (connection < 0) {
            LOG_WARNING("control: accept failed: %s", std::strerror(errno));
            continue;
        }
        serve_connection(connection);
        ::close(connection);
    }
}

void ControlServer::serve_connection(int fd)
{
    ucred peer{};
    socklen_t length = sizeof peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) {
        LOG_WARNING("control: SO_PEERCRED failed: %s", std::strerror(errno));
        return;
    }
    std::string line;
    std::string error;
    Reply reply;

    // The peer is checked before its request is read, so that a client that
    // may not change rules cannot hold the server for the I/O timeout and
    // delay root's commands. Its reply goes out at once.
    const std::vector<gid_t> groups = peer_supplementary_groups(fd, peer);
    if (!peer_allowed(peer.uid, peer.gid, groups, options_.control_group)) {
        error = "permission denied: uid " + std::to_string(peer.uid) + " (gid " +
                std::to_string(peer.gid) + ", supplementary groups " + format_groups(groups) +
                ") is neither root nor in the control group" +
                (options_.control_group ? " (gid " + std::to_string(*options_.control_group) + ")"
                                        : std::string(" (none configured: --control-group)"));
        log_rejected("rejected request", peer, error);
        set_timeouts(fd, refused_peer_timeout);
        if (!write_all(fd, encode_reply(Reply{false, error, {}})))
            log_rejected("reply not sent", peer, std::strerror(errno));
        discard_input(fd);
        return;
    }
    set_timeouts(fd, options_.io_timeout);

    const bool whole_request = read_request(fd, line, error);
    if (!whole_request) {
        log_rejected("bad request", peer, error);
        reply = Reply{false, error, {}};
    } else if (std::optional<Request> request = decode_request(line, error)) {
        reply = service_.handle(*request);
    } else {
        log_rejected("malformed request", peer, error);
        reply = Reply{false, "malformed request: " + error, {}};
    }

    if (!write_all(fd, encode_reply(reply)))
        log_rejected("reply not sent", peer, std::strerror(errno));
    // Bytes after the first newline (or after an oversized request) are still
    // unread, and closing over them would reset the connection before the
    // client reads the reply.
    set_timeouts(fd, refused_peer_timeout);
    discard_input(fd);
}

} // namespace portwall::control
