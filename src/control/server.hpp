// The control socket: a Unix stream socket served by one thread.
//
// Each connection carries one request and one reply (see protocol.hpp).
// Connections are served one at a time, which also serializes changes. A
// slow client is dropped after io_timeout, and one that sends an oversized
// request after at most twice that, so it cannot hold the others up longer.
//
// Authorization uses the peer's credentials from SO_PEERCRED and its
// supplementary groups from SO_PEERGROUPS, both as they were when the peer
// called connect(2), not the socket's file mode. Root may send any request,
// and so may a process whose primary or supplementary groups include the
// control group. Anyone else gets an error reply. The socket is created with
// mode 0666 so that a refused user gets that reply instead of a bare
// "permission denied".
#pragma once

#include "control/service.hpp"

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace portwall::control {

inline constexpr const char* default_socket_path = "/run/portwall/portwall.sock";
inline constexpr const char* default_state_dir = "/var/lib/portwall";

struct ServerOptions {
    std::string socket_path = default_socket_path;
    std::optional<gid_t> control_group; // members may use the socket besides root
    std::chrono::milliseconds io_timeout{2000};
};

// Look up a group by name, or take a decimal gid as it is (a group that
// only exists in a container or was given by number). Returns nullopt and
// sets `error` when the name does not exist.
std::optional<gid_t> lookup_group(const std::string& name, std::string& error);

// Reads the supplementary groups of the process at the other end of the
// connected Unix socket `fd` (SO_PEERGROUPS, Linux 4.13 and later).
// Returns nullopt and sets `error_number` when the kernel fails the call;
// ENOPROTOOPT means the kernel lacks the option.
std::optional<std::vector<gid_t>> read_peer_groups(int fd, int& error_number);

// The supplementary groups of `uid` in the group database, empty when the
// uid has no passwd entry.
std::vector<gid_t> database_groups(uid_t uid);

// Whether a peer with uid, primary gid and supplementary `groups` may use
// the control socket.
bool peer_allowed(uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                  std::optional<gid_t> control_group);

class ControlServer {
public:
    ControlServer(ControlService& service, ServerOptions options);
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;
    ~ControlServer();

    // Create the socket's directory (mode 0755) and bind the socket. Fails
    // when another daemon listens on the path, but replaces a stale socket
    // file.
    bool open(std::string& error);

    // Serve requests on a thread until stop().
    void start();

    // Stop the thread and remove the socket file. Safe to call twice.
    void stop();

private:
    void serve();
    void serve_connection(int fd);

    ControlService& service_;
    ServerOptions options_;
    int listen_fd_ = -1;
    int wake_fd_ = -1; // eventfd that stop() signals
    std::thread thread_;
};

} // namespace portwall::control
