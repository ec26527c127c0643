// Conntrack cutting through libnetfilter_conntrack: one dump of the table,
// judging each entry inside the dump callback, then one mark update per entry
// whose verdict changed. The updates wait until the dump has finished, because
// a handle cannot send a request while it is still reading a dump.
#include "queue/conntrack.hpp"

#include "classify/rule.hpp"

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <ifaddrs.h>
#include <netinet/in.h>

namespace portwall {
namespace {

// An entry whose mark must change: set the bit (cut) or clear it (restore).
struct MarkChange {
    nf_conntrack* entry = nullptr; // taken from the dump, freed by us
    Match match;
    bool cut = true;
};

struct CutState {
    const Ruleset* rules = nullptr;
    std::uint32_t mark_bit = default_flow_mark;
    std::vector<Address> local_addresses;
    std::vector<MarkChange> changes;
    std::size_t examined = 0;
    std::size_t judged = 0;
    bool out_of_memory = false;
};

// Fill `addresses` with every address configured on an interface of this
// network namespace, or return false with errno set.
bool read_local_addresses(std::vector<Address>& addresses)
{
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0)
        return false;
    for (const ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
        if (entry->ifa_addr == nullptr)
            continue;
        Address address;
        if (entry->ifa_addr->sa_family == AF_INET) {
            const auto* inet = reinterpret_cast<const sockaddr_in*>(entry->ifa_addr);
            address.family = Family::ipv4;
            std::memcpy(address.bytes.data(), &inet->sin_addr, 4);
        } else if (entry->ifa_addr->sa_family == AF_INET6) {
            const auto* inet6 = reinterpret_cast<const sockaddr_in6*>(entry->ifa_addr);
            address.family = Family::ipv6;
            std::memcpy(address.bytes.data(), &inet6->sin6_addr, 16);
        } else {
            continue;
        }
        addresses.push_back(address);
    }
    freeifaddrs(list);
    return true;
}

bool is_local(const CutState& state, const Address& address)
{
    for (const Address& local : state.local_addresses) {
        if (local == address)
            return true;
    }
    return false;
}

// Build the view of the connection's first packet (its original direction),
// as the decoder would have produced it at the input hook.
bool entry_to_packet(const nf_conntrack* entry, PacketView& packet)
{
    const std::uint8_t l3 = nfct_get_attr_u8(entry, ATTR_L3PROTO);
    if (l3 == AF_INET) {
        packet.family = Family::ipv4;
        const std::uint32_t src = nfct_get_attr_u32(entry, ATTR_IPV4_SRC); // network order
        const std::uint32_t dst = nfct_get_attr_u32(entry, ATTR_IPV4_DST);
        std::memcpy(packet.src.bytes.data(), &src, 4);
        std::memcpy(packet.dst.bytes.data(), &dst, 4);
    } else if (l3 == AF_INET6) {
        packet.family = Family::ipv6;
        const void* src = nfct_get_attr(entry, ATTR_IPV6_SRC);
        const void* dst = nfct_get_attr(entry, ATTR_IPV6_DST);
        if (src == nullptr || dst == nullptr)
            return false;
        std::memcpy(packet.src.bytes.data(), src, 16);
        std::memcpy(packet.dst.bytes.data(), dst, 16);
    } else {
        return false;
    }
    packet.src.family = packet.family;
    packet.dst.family = packet.family;
    packet.status = DecodeStatus::ok;
    packet.protocol = nfct_get_attr_u8(entry, ATTR_L4PROTO);

    static const std::bitset<256> with_ports = port_protocols();
    if (with_ports.test(packet.protocol) && nfct_attr_is_set(entry, ATTR_PORT_SRC) > 0 &&
        nfct_attr_is_set(entry, ATTR_PORT_DST) > 0) {
        packet.ports = PortsAbsence::present;
        packet.sport = ntohs(nfct_get_attr_u16(entry, ATTR_PORT_SRC));
        packet.dport = ntohs(nfct_get_attr_u16(entry, ATTR_PORT_DST));
    } else {
        packet.ports = PortsAbsence::no_ports_in_protocol;
    }
    if ((packet.protocol == ipproto::icmp || packet.protocol == ipproto::icmpv6) &&
        nfct_attr_is_set(entry, ATTR_ICMP_TYPE) > 0) {
        packet.has_icmp = true;
        packet.icmp_type = nfct_get_attr_u8(entry, ATTR_ICMP_TYPE);
        packet.icmp_code = nfct_get_attr_u8(entry, ATTR_ICMP_CODE);
    }
    return true;
}

// Dump callback: keep (steal) the entries to delete, let the library free
// the rest. It must not throw into C code, so allocation failure is recorded.
int judge_entry(enum nf_conntrack_msg_type, nf_conntrack* entry, void* data)
{
    auto& state = *static_cast<CutState*>(data);
    ++state.examined;

    PacketView packet;
    if (!entry_to_packet(entry, packet))
        return NFCT_CB_CONTINUE;
    if (!is_local(state, packet.dst) || is_local(state, packet.src))
        return NFCT_CB_CONTINUE;
    ++state.judged;

    const Match match = state.rules->classifier().classify(packet);
    const bool drop = match.action == Action::drop;
    const bool marked = (nfct_get_attr_u32(entry, ATTR_MARK) & state.mark_bit) != 0;
    if (drop == marked)
        return NFCT_CB_CONTINUE;
    try {
        state.changes.reserve(state.changes.size() + 1);
    } catch (const std::bad_alloc&) {
        state.out_of_memory = true;
        return NFCT_CB_CONTINUE;
    }
    state.changes.push_back({entry, match, drop});
    return NFCT_CB_STOLEN;
}

std::string describe_change(const MarkChange& change, const RuleTable& table)
{
    PacketView packet;
    entry_to_packet(change.entry, packet);
    const Match& match = change.match;
    const int family = packet.family == Family::ipv4 ? AF_INET : AF_INET6;
    char src[INET6_ADDRSTRLEN] = "?";
    char dst[INET6_ADDRSTRLEN] = "?";
    inet_ntop(family, packet.src.bytes.data(), src, sizeof src);
    inet_ntop(family, packet.dst.bytes.data(), dst, sizeof dst);

    std::string text = change.cut ? "cut " : "restored ";
    switch (packet.protocol) {
    case ipproto::tcp: text += "tcp "; break;
    case ipproto::udp: text += "udp "; break;
    case ipproto::sctp: text += "sctp "; break;
    case ipproto::udplite: text += "udplite "; break;
    default:
        text += "proto ";
        text += std::to_string(packet.protocol);
        text += ' ';
        break;
    }
    const bool ports = packet.ports == PortsAbsence::present;
    const bool brackets = family == AF_INET6 && ports;
    const auto append_endpoint = [&](const char* address, std::uint16_t port) {
        text += brackets ? "[" : "";
        text += address;
        text += brackets ? "]" : "";
        if (ports) {
            text += ':';
            text += std::to_string(port);
        }
    };
    append_endpoint(src, packet.sport);
    text += " -> ";
    append_endpoint(dst, packet.dport);
    if (match.is_policy())
        text += change.cut ? " policy drop" : " policy accept";
    else
        text += " rule '" + rule_display_name(table, match.rule) + "'";
    return text;
}

// Send an update that carries only the original tuple and the new mark, so
// that nothing else of the entry (timeouts, TCP state) is rewritten.
bool update_mark(nfct_handle* handle, const MarkChange& change, std::uint32_t mark_bit)
{
    nf_conntrack* update = nfct_new();
    if (update == nullptr)
        return false;
    nfct_copy(update, change.entry, NFCT_CP_ORIG);
    const std::uint32_t mark = nfct_get_attr_u32(change.entry, ATTR_MARK);
    nfct_set_attr_u32(update, ATTR_MARK, change.cut ? mark | mark_bit : mark & ~mark_bit);
    const bool updated = nfct_query(handle, NFCT_Q_UPDATE, update) == 0;
    const int saved = errno;
    nfct_destroy(update);
    errno = saved;
    return updated;
}

void apply_changes(nfct_handle* handle, CutState& state, ConntrackCutResult& result)
{
    for (const MarkChange& change : state.changes) {
        if (update_mark(handle, change, state.mark_bit)) {
            ++(change.cut ? result.cut : result.restored);
            if (result.examples.size() < conntrack_cut_max_examples)
                result.examples.push_back(describe_change(change, state.rules->table()));
        } else if (errno == ENOENT) {
            ++result.vanished;
        } else if (result.ok) {
            result.ok = false;
            result.error =
                std::string("updating the mark of a conntrack entry failed: ") +
                std::strerror(errno);
        }
        nfct_destroy(change.entry);
    }
    state.changes.clear();
}

} // namespace

ConntrackCutResult cut_dropped_connections(const Ruleset& rules, std::uint32_t mark_bit)
{
    ConntrackCutResult result;
    if (!valid_flow_mark(mark_bit)) {
        result.ok = false;
        result.error = "the conntrack mark must have exactly one bit set";
        return result;
    }
    CutState state;
    state.rules = &rules;
    state.mark_bit = mark_bit;
    if (!read_local_addresses(state.local_addresses)) {
        result.ok = false;
        result.error = std::string("reading local addresses failed: ") + std::strerror(errno);
        return result;
    }

    nfct_handle* handle = nfct_open(CONNTRACK, 0);
    if (handle == nullptr) {
        result.ok = false;
        result.error = std::string("opening a conntrack netlink socket failed: ") +
                       std::strerror(errno) + " (is nf_conntrack loaded, and are we root?)";
        return result;
    }
    nfct_callback_register(handle, NFCT_T_ALL, judge_entry, &state);

    std::uint32_t family = AF_UNSPEC; // both IPv4 and IPv6 entries
    if (nfct_query(handle, NFCT_Q_DUMP, &family) != 0) {
        result.ok = false;
        result.error = std::string("dumping the conntrack table failed: ") + std::strerror(errno);
    }
    nfct_callback_unregister(handle);
    apply_changes(handle, state, result);
    nfct_close(handle);

    result.examined = state.examined;
    result.judged = state.judged;
    if (state.out_of_memory && result.ok) {
        result.ok = false;
        result.error = "out of memory while listing connections to cut; some were left open";
    }
    return result;
}

} // namespace portwall
