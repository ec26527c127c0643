#include "queue/nfqueue.hpp"

#include "common/log.hpp"
#include "decode/decode.hpp"
#include "queue/verdict_plan.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

// Order matters: the kernel's nfnetlink_queue.h and the copy that ships with
// libnetfilter_queue share one include guard, and the kernel's is newer
// (NFQA_CAP_LEN, NFQA_SKB_INFO, NFQNL_MSG_VERDICT_BATCH).
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

namespace portwall {

namespace {

// Netlink overhead of one packet message besides the copied payload: the
// netlink and nfnetlink headers and the metadata attributes (packet header,
// mark, timestamp, interfaces, hardware address, lengths, VLAN, ...) take a
// few hundred bytes. A message that still does not fit is counted as
// truncated and judged from what arrived.
constexpr std::size_t message_overhead = 1024;

// One verdict message: nlmsghdr (16) + nfgenmsg (4) + NFQA_VERDICT_HDR (4 + 8).
constexpr std::size_t verdict_message_size = 64;

// Buffer for one configuration message (command, parameters, flags).
constexpr std::size_t config_message_size = 512;

// Attribute table size for nfq_nlmsg_parse. The library fills entries up to
// the NFQA_MAX it was built with, which may be newer than our header's.
constexpr std::size_t attribute_slots = 64;
static_assert(attribute_slots > NFQA_MAX);

constexpr std::uint16_t packet_message_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;

// After stop(), the reader drains the socket for at most this many batches so
// that a queue that never empties (hooks left in place) cannot hold it.
constexpr int max_drain_batches = 256;

const char* protocol_name(std::uint8_t protocol) noexcept
{
    switch (protocol) {
    case ipproto::tcp:
        return "tcp";
    case ipproto::udp:
        return "udp";
    case ipproto::udplite:
        return "udplite";
    case ipproto::sctp:
        return "sctp";
    case ipproto::icmp:
        return "icmp";
    case ipproto::icmpv6:
        return "icmpv6";
    default:
        return nullptr;
    }
}

// Format "ADDRESS" or "ADDRESS:PORT" ("[ADDRESS]:PORT" for IPv6) without allocating.
void format_endpoint(char* out, std::size_t size, const Address& address, bool with_port,
                     std::uint16_t port) noexcept
{
    char text[INET6_ADDRSTRLEN] = "?";
    const int family = address.family == Family::ipv4 ? AF_INET : AF_INET6;
    inet_ntop(family, address.bytes.data(), text, sizeof text);
    if (!with_port)
        std::snprintf(out, size, "%s", text);
    else if (address.family == Family::ipv4)
        std::snprintf(out, size, "%s:%u", text, port);
    else
        std::snprintf(out, size, "[%s]:%u", text, port);
}

std::uint32_t read_be32(const void* bytes) noexcept
{
    const auto* p = static_cast<const std::uint8_t*>(bytes);
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

std::string system_error(const char* what, int error_number)
{
    return std::string(what) + ": " + std::strerror(error_number);
}

} // namespace

std::uint64_t QueueCounters::malformed_total() const noexcept
{
    std::uint64_t total = 0;
    for (const Counter& counter : malformed)
        total += counter.load(std::memory_order_relaxed);
    return total;
}

struct QueueReader::Impl {
    Impl(QueueReader& owner, const RulesetHolder& holder) : owner(owner), holder(holder) {}

    QueueReader& owner;
    const RulesetHolder& holder;
    mnl_socket* socket = nullptr;
    int stop_fd = -1;
    int wake_fd = -1; // written by set_fail_open to wake a reader that waits in poll
    std::uint32_t port_id = 0;
    // A fail mode requested by another thread: -1 none, 0 closed, 1 open.
    std::atomic<int> fail_request{-1};

    std::shared_ptr<const Ruleset> ruleset;
    std::uint64_t generation = 0;

    // recvmmsg slots, one message each, allocated once in open().
    std::size_t slot_size = 0;
    std::vector<char> receive_buffer;
    std::vector<iovec> slots;
    std::vector<mmsghdr> headers;

    std::vector<PendingVerdict> pending; // capacity fixed in open()
    std::vector<VerdictMessage> planned; // as many as `pending` can hold
    std::vector<char> send_buffer;

    // Configuration replies: open() waits for the error/ack of this sequence.
    std::uint32_t next_sequence = 1;
    std::uint32_t awaited_sequence = 0;
    bool ack_received = false;
    int ack_error = 0;

    bool failed = false; // a verdict could not be sent: run() stops

    RateLimiter malformed_log{10, 1000, std::chrono::minutes(1)};
    RateLimiter drop_log{20, 1000, std::chrono::minutes(1)};
    RateLimiter error_log{10, 1000, std::chrono::minutes(1)};

    QueueCounters& counters() { return owner.counters_; }
    const QueueOptions& options() const { return owner.options_; }

    bool configure(std::string& error);
    void put_flags(nlmsghdr* message, bool fail_open);
    void apply_fail_request();
    bool send_config(nlmsghdr* message, const char* what, std::string& error);
    int receive_batch(int flags);
    void process_batch(int count);
    void process_datagram(char* data, std::size_t length, bool truncated);
    void process_packet(const nlmsghdr* message);
    void process_error(const nlmsghdr* message);
    std::uint32_t judge(nlattr* const* attributes, RateLimiter::Clock::time_point now);
    void log_drop(const PacketView& packet, const Match& match);
    void log_malformed(const PacketView& packet, std::size_t captured, std::uint32_t wire);
    void add_verdict(std::uint32_t id, std::uint32_t verdict);
    void flush_verdicts();
    std::size_t put_verdict(std::size_t offset, int type, std::uint32_t id, std::uint32_t verdict);
};

QueueReader::QueueReader(const QueueOptions& options, const RulesetHolder& holder)
    : options_(options), impl_(std::make_unique<Impl>(*this, holder))
{
}

QueueReader::~QueueReader()
{
    if (impl_->socket != nullptr) {
        // Unbind explicitly; closing the socket would also release the queue,
        // and the kernel drops whatever still waits in it.
        alignas(nlmsghdr) char buffer[config_message_size];
        nlmsghdr* message = nfq_nlmsg_put(buffer, NFQNL_MSG_CONFIG, options_.queue);
        nfq_nlmsg_cfg_put_cmd(message, AF_UNSPEC, NFQNL_CFG_CMD_UNBIND);
        mnl_socket_sendto(impl_->socket, message, message->nlmsg_len);
        mnl_socket_close(impl_->socket);
    }
    if (impl_->stop_fd >= 0)
        ::close(impl_->stop_fd);
    if (impl_->wake_fd >= 0)
        ::close(impl_->wake_fd);
}

std::unique_ptr<QueueReader> QueueReader::open(const QueueOptions& options,
                                               const RulesetHolder& holder, std::string& error)
{
    std::unique_ptr<QueueReader> reader(new QueueReader(options, holder));
    Impl& impl = *reader->impl_;
    const std::string prefix = "queue " + std::to_string(options.queue) + ": ";

    impl.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    impl.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (impl.stop_fd < 0 || impl.wake_fd < 0) {
        error = prefix + system_error("eventfd failed", errno);
        return nullptr;
    }

    impl.socket = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    if (impl.socket == nullptr) {
        error = prefix + system_error("cannot open a netfilter netlink socket", errno);
        return nullptr;
    }
    if (mnl_socket_bind(impl.socket, 0, MNL_SOCKET_AUTOPID) < 0) {
        error = prefix + system_error("cannot bind the netlink socket", errno);
        return nullptr;
    }
    impl.port_id = mnl_socket_get_portid(impl.socket);

    const std::uint32_t batch = std::max<std::uint32_t>(options.batch_size, 1);
    // Rounded up so that every slot starts aligned for nlmsghdr.
    impl.slot_size = (options.copy_range + message_overhead + 7) / 8 * 8;
    impl.receive_buffer.resize(impl.slot_size * batch);
    impl.slots.resize(batch);
    impl.headers.resize(batch);
    for (std::uint32_t i = 0; i < batch; ++i) {
        impl.slots[i] = {impl.receive_buffer.data() + i * impl.slot_size, impl.slot_size};
        impl.headers[i] = {};
        impl.headers[i].msg_hdr.msg_iov = &impl.slots[i];
        impl.headers[i].msg_hdr.msg_iovlen = 1;
    }
    // A datagram carries one packet message in practice; twice the batch
    // leaves room for acks and error replies before a flush is forced.
    impl.pending.reserve(2 * batch);
    impl.planned.resize(2 * batch);
    impl.send_buffer.resize(2 * batch * verdict_message_size);

    impl.ruleset = holder.load();
    impl.generation = holder.generation();

    if (!impl.configure(error)) {
        error = prefix + error;
        return nullptr;
    }
    return reader;
}

bool QueueReader::Impl::configure(std::string& error)
{
    const int fd = mnl_socket_get_fd(socket);
    const int size = options().receive_buffer;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) {
        // Without CAP_NET_ADMIN the kernel caps the size at net.core.rmem_max.
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) < 0) {
            error = system_error("cannot set the socket receive buffer", errno);
            return false;
        }
        LOG_WARNING("queue %u: receive buffer capped at net.core.rmem_max (requested %d bytes)",
                    options().queue, size);
    }

    alignas(nlmsghdr) char buffer[config_message_size];
    nlmsghdr* message = nfq_nlmsg_put(buffer, NFQNL_MSG_CONFIG, options().queue);
    nfq_nlmsg_cfg_put_cmd(message, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
    if (!send_config(message, "cannot bind the queue (is another process reading it?)", error))
        return false;

    message = nfq_nlmsg_put(buffer, NFQNL_MSG_CONFIG, options().queue);
    nfq_nlmsg_cfg_put_params(message, NFQNL_COPY_PACKET, static_cast<int>(options().copy_range));
    nfq_nlmsg_cfg_put_qmaxlen(message, options().max_length);
    put_flags(message, options().fail_open);
    return send_config(message, "cannot set copy mode, queue length and flags", error);
}

void QueueReader::Impl::put_flags(nlmsghdr* message, bool fail_open)
{
    // GSO: take aggregated packets whole instead of having the kernel segment
    // them first. Their length may exceed 64 KiB; NFQA_CAP_LEN carries it.
    std::uint32_t flags = NFQA_CFG_F_GSO;
    if (fail_open)
        flags |= NFQA_CFG_F_FAIL_OPEN;
    mnl_attr_put_u32(message, NFQA_CFG_FLAGS, htonl(flags));
    mnl_attr_put_u32(message, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN));
}

// Runs on the reader's thread: only the socket's owner may configure its
// queue, and the acknowledgement arrives among the packets it reads.
void QueueReader::Impl::apply_fail_request()
{
    const int requested = fail_request.exchange(-1);
    if (requested < 0)
        return;
    alignas(nlmsghdr) char buffer[config_message_size];
    nlmsghdr* message = nfq_nlmsg_put(buffer, NFQNL_MSG_CONFIG, options().queue);
    put_flags(message, requested == 1);
    std::string error;
    const char* name = requested == 1 ? "open" : "closed";
    if (!send_config(message, "cannot change the fail mode", error)) {
        LOG_ERROR("queue %u: %s; fail mode stays %s", options().queue, error.c_str(),
                  options().fail_open ? "open" : "closed");
        return;
    }
    owner.options_.fail_open = requested == 1;
    LOG_INFO("queue %u: fail mode now %s", options().queue, name);
}

// Send one configuration message with NLM_F_ACK and wait for the kernel's
// reply. Packets that arrive meanwhile are judged as usual.
bool QueueReader::Impl::send_config(nlmsghdr* message, const char* what, std::string& error)
{
    message->nlmsg_flags |= NLM_F_ACK;
    message->nlmsg_seq = next_sequence++;
    awaited_sequence = message->nlmsg_seq;
    ack_received = false;
    ack_error = 0;

    if (mnl_socket_sendto(socket, message, message->nlmsg_len) < 0) {
        error = system_error(what, errno);
        return false;
    }

    pollfd readable{mnl_socket_get_fd(socket), POLLIN, 0};
    while (!ack_received) {
        // The kernel replies synchronously, so two seconds without a reply means
        // it never will.
        const int ready = poll(&readable, 1, 2000);
        if (ready == 0) {
            error = std::string(what) + ": no reply from the kernel within 2 s";
            return false;
        }
        if (ready < 0 && errno != EINTR) {
            error = system_error("poll failed", errno);
            return false;
        }
        const int count = receive_batch(MSG_DONTWAIT);
        if (count > 0)
            process_batch(count);
        else if (count < 0 && errno != EAGAIN && errno != EINTR && errno != ENOBUFS) {
            error = system_error(what, errno);
            return false;
        }
        if (failed) {
            error = std::string(what) + ": " + owner.error_;
            return false;
        }
    }
    if (ack_error != 0) {
        error = system_error(what, ack_error);
        return false;
    }
    return true;
}

int QueueReader::Impl::receive_batch(int flags)
{
    return recvmmsg(mnl_socket_get_fd(socket), headers.data(),
                    static_cast<unsigned>(headers.size()), flags, nullptr);
}

void QueueReader::Impl::process_batch(int count)
{
    counters().batches.fetch_add(1, std::memory_order_relaxed);

    // One relaxed load per batch; the lock in load() is taken only after a swap.
    const std::uint64_t current = holder.generation();
    if (current != generation || !ruleset) {
        ruleset = holder.load();
        generation = current;
    }

    for (int i = 0; i < count; ++i) {
        const bool truncated = (headers[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
        const std::size_t length = std::min<std::size_t>(headers[i].msg_len, slot_size);
        process_datagram(static_cast<char*>(slots[i].iov_base), length, truncated);
    }
    flush_verdicts();
}

void QueueReader::Impl::process_datagram(char* data, std::size_t length, bool truncated)
{
    if (truncated) {
        counters().truncated_messages.fetch_add(1, std::memory_order_relaxed);
        // Shrink the cut message to the bytes that arrived. The packet header
        // attribute comes first, so the packet id usually survives and the
        // packet still gets its verdict, judged from the attributes present.
        if (length >= sizeof(nlmsghdr)) {
            auto* first = reinterpret_cast<nlmsghdr*>(data);
            if (first->nlmsg_len > length)
                first->nlmsg_len = static_cast<std::uint32_t>(length);
        }
    }

    int remaining = static_cast<int>(length);
    for (auto* message = reinterpret_cast<nlmsghdr*>(data); mnl_nlmsg_ok(message, remaining);
         message = mnl_nlmsg_next(message, &remaining)) {
        if (message->nlmsg_type == packet_message_type)
            process_packet(message);
        else if (message->nlmsg_type == NLMSG_ERROR)
            process_error(message);
        // NLMSG_NOOP, NLMSG_DONE and unknown types carry nothing to act on.
    }
}

void QueueReader::Impl::process_error(const nlmsghdr* message)
{
    if (mnl_nlmsg_get_payload_len(message) < sizeof(nlmsgerr))
        return;
    const auto* reply = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(message));
    const int error_number = -reply->error;

    if (message->nlmsg_seq != 0 && message->nlmsg_seq == awaited_sequence) {
        ack_received = true;
        ack_error = error_number;
        return;
    }
    if (error_number == 0)
        return;

    // Verdicts are sent without NLM_F_ACK, so any other reply is a rejected
    // verdict (ENOENT: the packet id is no longer queued).
    counters().verdict_errors.fetch_add(1, std::memory_order_relaxed);
    const auto decision = error_log.check(RateLimiter::Clock::now());
    if (decision.log)
        LOG_WARNING("queue %u: kernel rejected a verdict message: %s (%" PRIu64
                    " similar messages suppressed)",
                    options().queue, std::strerror(error_number), decision.suppressed);
}

void QueueReader::Impl::process_packet(const nlmsghdr* message)
{
    std::array<nlattr*, attribute_slots> attributes{};
    // A parse error stops at the faulty attribute; what came before is kept.
    nfq_nlmsg_parse(message, attributes.data());

    const nlattr* header = attributes[NFQA_PACKET_HDR];
    if (header == nullptr || mnl_attr_get_payload_len(header) < sizeof(nfqnl_msg_packet_hdr)) {
        // No id, so no verdict can name this packet. With batch verdicts the
        // next batch that covers a later id releases it; otherwise the kernel
        // drops it when the queue is unbound.
        counters().unusable_messages.fetch_add(1, std::memory_order_relaxed);
        const auto decision = error_log.check(RateLimiter::Clock::now());
        if (decision.log)
            LOG_WARNING("queue %u: packet message without a packet id (%" PRIu64
                        " similar messages suppressed)",
                        options().queue, decision.suppressed);
        return;
    }
    // The header struct is packed; the id is its first four bytes, big-endian.
    const std::uint32_t id = read_be32(mnl_attr_get_payload(header));
    add_verdict(id, judge(attributes.data(), RateLimiter::Clock::now()));
}

std::uint32_t QueueReader::Impl::judge(nlattr* const* attributes,
                                       RateLimiter::Clock::time_point now)
{
    const Ruleset* rules = ruleset.get();
    if (rules == nullptr) {
        counters().no_ruleset.fetch_add(1, std::memory_order_relaxed);
        return options().fail_open ? NF_ACCEPT : NF_DROP;
    }
    const auto policy_verdict = [&] {
        return rules->table().policy == Action::accept ? NF_ACCEPT : NF_DROP;
    };

    const nlattr* payload = attributes[NFQA_PAYLOAD];
    if (payload == nullptr) {
        counters().missing_payload.fetch_add(1, std::memory_order_relaxed);
        return policy_verdict();
    }
    const auto* bytes = static_cast<const std::uint8_t*>(mnl_attr_get_payload(payload));
    const std::size_t captured = mnl_attr_get_payload_len(payload);

    // NFQA_CAP_LEN is present when the copy range cut the packet. It contains
    // the full length, which for GSO packets may exceed 64 KiB.
    std::uint32_t wire = static_cast<std::uint32_t>(captured);
    const nlattr* cap_len = attributes[NFQA_CAP_LEN];
    if (cap_len != nullptr && mnl_attr_get_payload_len(cap_len) >= 4)
        wire = std::max(wire, read_be32(mnl_attr_get_payload(cap_len)));

    const PacketView packet = decode_ip({bytes, captured}, wire);
    if (!packet.ok()) {
        counters().malformed[static_cast<std::size_t>(packet.status)].fetch_add(
            1, std::memory_order_relaxed);
        if (malformed_log.check(now).log)
            log_malformed(packet, captured, wire);
    }

    const Match match = rules->evaluate(packet);
    if (match.action == Action::accept)
        return NF_ACCEPT;
    if (packet.ok()) {
        const auto decision = drop_log.check(now);
        if (decision.log)
            log_drop(packet, match);
    }
    return NF_DROP;
}

void QueueReader::Impl::log_malformed(const PacketView& packet, std::size_t captured,
                                      std::uint32_t wire)
{
    const std::string_view reason = decode_status_name(packet.status);
    if (!packet.addresses_read()) {
        LOG_WARNING("queue %u: malformed packet (%.*s): %zu bytes captured of %u; judged by the "
                    "policy",
                    options().queue, static_cast<int>(reason.size()), reason.data(), captured,
                    wire);
        return;
    }
    char source[64];
    char destination[64];
    format_endpoint(source, sizeof source, packet.src, false, 0);
    format_endpoint(destination, sizeof destination, packet.dst, false, 0);
    LOG_WARNING("queue %u: malformed packet (%.*s) proto %u %s -> %s: %zu bytes captured of %u; "
                "judged by the policy",
                options().queue, static_cast<int>(reason.size()), reason.data(), packet.protocol,
                source, destination, captured, wire);
}

void QueueReader::Impl::log_drop(const PacketView& packet, const Match& match)
{
    char source[64];
    char destination[64];
    const bool ports = packet.has_ports();
    format_endpoint(source, sizeof source, packet.src, ports, packet.sport);
    format_endpoint(destination, sizeof destination, packet.dst, ports, packet.dport);

    char protocol[16];
    const char* name = protocol_name(packet.protocol);
    if (name != nullptr)
        std::snprintf(protocol, sizeof protocol, "%s", name);
    else
        std::snprintf(protocol, sizeof protocol, "proto %u", packet.protocol);

    if (match.is_policy()) {
        LOG_INFO("queue %u: dropped %s %s -> %s by the policy", options().queue, protocol, source,
                 destination);
        return;
    }
    // The rule name is a std::string inside the immutable table; reading it
    // does not allocate. An unnamed rule is shown by its 1-based position.
    const std::string& rule = ruleset->table().rules[match.rule].name;
    if (rule.empty())
        LOG_INFO("queue %u: dropped %s %s -> %s by rule #%u", options().queue, protocol, source,
                 destination, match.rule + 1);
    else
        LOG_INFO("queue %u: dropped %s %s -> %s by rule %s", options().queue, protocol, source,
                 destination, rule.c_str());
}

void QueueReader::Impl::add_verdict(std::uint32_t id, std::uint32_t verdict)
{
    if (pending.size() == pending.capacity())
        flush_verdicts();
    pending.push_back({id, verdict});

    counters().packets.fetch_add(1, std::memory_order_relaxed);
    if (verdict == NF_ACCEPT)
        counters().accepted.fetch_add(1, std::memory_order_relaxed);
    else
        counters().dropped.fetch_add(1, std::memory_order_relaxed);
}

std::size_t QueueReader::Impl::put_verdict(std::size_t offset, int type, std::uint32_t id,
                                           std::uint32_t verdict)
{
    nlmsghdr* message = nfq_nlmsg_put(send_buffer.data() + offset, type, options().queue);
    nfq_nlmsg_verdict_put(message, static_cast<int>(id), static_cast<int>(verdict));
    return offset + message->nlmsg_len;
}

// Send the verdicts of the batch in one sendto. Packet ids rise in the order
// the kernel queued them, and every packet before this batch already has its
// verdict, so a batch verdict for a run of equal verdicts covers exactly that
// run.
void QueueReader::Impl::flush_verdicts()
{
    if (pending.empty())
        return;

    const std::size_t count = plan_verdict_messages(pending, options().batch_verdicts, planned);
    pending.clear();
    std::size_t offset = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const VerdictMessage& message = planned[i];
        const int type = message.batch ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT;
        offset = put_verdict(offset, type, message.id, message.verdict);
        auto& counter = message.batch ? counters().batch_verdict_messages
                                      : counters().verdict_messages;
        counter.fetch_add(1, std::memory_order_relaxed);
    }

    // A verdict that is never delivered leaves its packet in the queue for
    // good, so transient errors are retried and a lasting one stops the reader.
    for (int attempt = 0; attempt < 5; ++attempt) {
        if (mnl_socket_sendto(socket, send_buffer.data(), offset) >= 0)
            return;
        const int error_number = errno;
        counters().verdict_errors.fetch_add(1, std::memory_order_relaxed);
        if (error_number != EINTR && error_number != EAGAIN && error_number != ENOBUFS &&
            error_number != ENOMEM) {
            owner.error_ = system_error("cannot send verdicts", error_number);
            failed = true;
            return;
        }
    }
    owner.error_ = "cannot send verdicts: the kernel kept rejecting them with a transient error";
    failed = true;
}

bool QueueReader::run()
{
    Impl& impl = *impl_;
    pollfd watched[3] = {{mnl_socket_get_fd(impl.socket), POLLIN, 0},
                         {impl.stop_fd, POLLIN, 0},
                         {impl.wake_fd, POLLIN, 0}};
    bool stopping = false;
    int drain_batches = 0;

    while (!impl.failed) {
        if (impl.fail_request.load(std::memory_order_relaxed) >= 0)
            impl.apply_fail_request();
        const int count = impl.receive_batch(MSG_DONTWAIT);
        if (count > 0) {
            impl.process_batch(count);
            if (stopping && ++drain_batches >= max_drain_batches)
                return true;
            continue;
        }
        if (count < 0 && errno == ENOBUFS) {
            // The receive buffer overflowed. The kernel dropped (or, failing
            // open, accepted) what it could not deliver, so those packets need
            // no verdict.
            counters_.enobufs.fetch_add(1, std::memory_order_relaxed);
            const auto decision = impl.error_log.check(RateLimiter::Clock::now());
            if (decision.log)
                LOG_WARNING("queue %u: receive buffer overflow (ENOBUFS), packets lost in the "
                            "kernel; raise --rcvbuf (%" PRIu64 " similar messages suppressed)",
                            options_.queue, decision.suppressed);
            continue;
        }
        if (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            error_ = system_error("cannot read from the queue socket", errno);
            return false;
        }
        if (count < 0 && errno == EINTR)
            continue;

        // The socket is empty.
        if (stopping)
            return true;
        if (poll(watched, 3, -1) < 0 && errno != EINTR) {
            error_ = system_error("poll failed", errno);
            return false;
        }
        if (watched[1].revents & POLLIN)
            stopping = true; // drain what is queued, then return
        if (watched[2].revents & POLLIN) {
            std::uint64_t count = 0;
            [[maybe_unused]] const ssize_t got = ::read(impl.wake_fd, &count, sizeof count);
        }
    }
    return false;
}

void QueueReader::set_fail_open(bool fail_open) noexcept
{
    impl_->fail_request.store(fail_open ? 1 : 0);
    const std::uint64_t increment = 1;
    [[maybe_unused]] const ssize_t written =
        ::write(impl_->wake_fd, &increment, sizeof increment);
}

void QueueReader::stop() noexcept
{
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(impl_->stop_fd, &one, sizeof one);
}

std::optional<KernelQueueStats> parse_kernel_queue_stats(std::string_view text,
                                                         std::uint16_t queue)
{
    // Columns: queue, peer port id, queued now, copy mode, copy range, dropped
    // because full, dropped because delivery failed, last packet id, 1.
    std::istringstream lines{std::string(text)};
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream fields(line);
        KernelQueueStats stats;
        unsigned number = 0;
        unsigned copy_mode = 0;
        unsigned copy_range = 0;
        if (!(fields >> number >> stats.port_id >> stats.waiting >> copy_mode >> copy_range >>
              stats.queue_dropped >> stats.user_dropped >> stats.last_packet_id))
            continue;
        if (number == queue) {
            stats.queue = queue;
            return stats;
        }
    }
    return std::nullopt;
}

std::optional<KernelQueueStats> read_kernel_queue_stats(std::uint16_t queue)
{
    std::ifstream file("/proc/net/netfilter/nfnetlink_queue");
    std::ostringstream text;
    text << file.rdbuf();
    return parse_kernel_queue_stats(text.str(), queue);
}

std::vector<KernelQueueStats> parse_all_kernel_queue_stats(std::string_view text,
                                                           std::size_t& malformed_lines)
{
    std::vector<KernelQueueStats> queues;
    malformed_lines = 0;
    std::istringstream lines{std::string(text)};
    std::string line;
    while (std::getline(lines, line)) {
        if (line.find_first_not_of(" \t") == std::string::npos)
            continue;
        // Only the queue number is read here. parse_kernel_queue_stats reads
        // the other columns, so their layout is written in one place.
        unsigned long queue = 0;
        std::optional<KernelQueueStats> stats;
        if (std::istringstream(line) >> queue && queue <= 0xFFFF)
            stats = parse_kernel_queue_stats(line, static_cast<std::uint16_t>(queue));
        if (stats)
            queues.push_back(*stats);
        else
            ++malformed_lines;
    }
    return queues;
}

std::vector<KernelQueueStats> read_all_kernel_queue_stats(std::string& error)
{
    const char* path = "/proc/net/netfilter/nfnetlink_queue";
    std::ifstream file(path);
    if (!file) {
        error = std::string("cannot read ") + path + ": " + std::strerror(errno);
        return {};
    }
    std::ostringstream text;
    text << file.rdbuf();
    std::size_t malformed = 0;
    std::vector<KernelQueueStats> queues = parse_all_kernel_queue_stats(text.str(), malformed);
    if (malformed != 0)
        error = std::to_string(malformed) + " lines of " + path + " were not understood";
    return queues;
}

} // namespace portwall
