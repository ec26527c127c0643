#include "control/client.hpp"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace portwall::control {

namespace {

// Closes the socket on every return path.
struct FileDescriptor {
    int fd;
    ~FileDescriptor()
    {
        if (fd >= 0)
            ::close(fd);
    }
};

std::string connect_error(const std::string& path, int code, ClientError& kind)
{
    if (code == ENOENT || code == ECONNREFUSED) {
        kind = ClientError::daemon_down;
        return "the portwall daemon is not running (nothing listens on " + path +
               "); start it (systemctl start portwall), or add --offline to change the saved "
               "rules for its next start";
    }
    if (code == EACCES || code == EPERM) {
        kind = ClientError::permission;
        return "permission denied on " + path + ": run as root or as a member of the control group";
    }
    kind = ClientError::daemon_down;
    return "connecting to " + path + " failed: " + std::strerror(code);
}

} // namespace

std::optional<Reply> send_request(const std::string& socket_path, const Request& request,
                                  int timeout_seconds, ClientError& kind, std::string& error)
{
    kind = ClientError::none;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof address.sun_path) {
        kind = ClientError::protocol;
        error = "socket path \"" + socket_path + "\" is empty or too long";
        return std::nullopt;
    }
    std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);

    FileDescriptor socket{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (socket.fd < 0 ||
        ::connect(socket.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        error = connect_error(socket_path, errno, kind);
        return std::nullopt;
    }
    timeval timeout{timeout_seconds, 0};
    ::setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(socket.fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);

    kind = ClientError::protocol;
    const std::string line = encode_request(request);
    if (::send(socket.fd, line.data(), line.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(line.size())) {
        error = "sending the request to " + socket_path + " failed: " + std::strerror(errno);
        return std::nullopt;
    }
    ::shutdown(socket.fd, SHUT_WR);

    std::string text;
    char buffer[65536];
    for (;;) {
        const ssize_t received = ::recv(socket.fd, buffer, sizeof buffer, 0);
        if (received < 0 && errno == EINTR)
            continue;
        if (received < 0) {
            error =
                errno == EAGAIN
                    ? "the daemon did not reply within " + std::to_string(timeout_seconds) + " s"
                    : "reading the reply failed: " + std::string(std::strerror(errno));
            return std::nullopt;
        }
        if (received == 0)
            break;
        text.append(buffer, static_cast<std::size_t>(received));
        if (text.size() > max_reply_bytes) {
            error = "the reply is longer than " + std::to_string(max_reply_bytes) + " bytes";
            return std::nullopt;
        }
    }
    if (text.empty()) {
        error = "the daemon closed the connection without a reply";
        return std::nullopt;
    }
    std::optional<Reply> reply = decode_reply(text, error);
    if (reply)
        kind = ClientError::none;
    return reply;
}

} // namespace portwall::control
