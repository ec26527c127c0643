#include "replay/replay.hpp"

#include <pcap/pcap.h>

#include <algorithm>
#include <memory>

namespace portwall::replay {

namespace {

struct DltMapping {
    int dlt;
    LinkType link;
};

// pcap_datalink returns DLT_ values, which differ from the LINKTYPE_ values in
// the file on some platforms (DLT_RAW is 12 on Linux, 14 on OpenBSD; LINKTYPE_RAW
// is 101). libpcap 1.10 maps LINKTYPE_RAW to DLT_RAW when it opens a file; 101
// is kept in the table in case a libpcap build passes it through unmapped.
constexpr std::array<DltMapping, 9> dlt_mappings{{
    {DLT_NULL, LinkType::null_bsd},
    {DLT_EN10MB, LinkType::ethernet},
    {DLT_RAW, LinkType::raw},
    {101, LinkType::raw},
    {DLT_LOOP, LinkType::loop},
    {DLT_LINUX_SLL, LinkType::linux_sll},
    {DLT_IPV4, LinkType::ipv4},
    {DLT_IPV6, LinkType::ipv6},
    {DLT_LINUX_SLL2, LinkType::linux_sll2},
}};

struct PcapCloser {
    void operator()(pcap_t* handle) const noexcept { pcap_close(handle); }
};
using PcapHandle = std::unique_ptr<pcap_t, PcapCloser>;

std::string describe_dlt(int dlt)
{
    const char* name = pcap_datalink_val_to_name(dlt);
    std::string text = "DLT " + std::to_string(dlt);
    if (name != nullptr)
        text += " (" + std::string(name) + ")";
    return text;
}

PacketView truncated_link_packet() noexcept
{
    PacketView packet;
    packet.status = DecodeStatus::truncated_link;
    return packet;
}

} // namespace

std::optional<LinkType> link_type_from_dlt(int dlt) noexcept
{
    for (const DltMapping& mapping : dlt_mappings) {
        if (mapping.dlt == dlt)
            return mapping.link;
    }
    return std::nullopt;
}

PacketOutcome judge_frame(LinkType link, std::span<const std::uint8_t> captured,
                          std::uint32_t wire_length, const Ruleset& ruleset) noexcept
{
    PacketOutcome outcome;
    const LinkResult stripped = strip_link(static_cast<std::uint32_t>(link), captured);
    if (stripped.kind == LinkResult::Kind::not_ip)
        return outcome;

    outcome.is_ip = true;
    if (stripped.kind == LinkResult::Kind::truncated || stripped.ip_offset > captured.size()) {
        outcome.packet = truncated_link_packet();
    } else {
        // A corrupt record may claim a wire length below its captured length;
        // decode_ip needs wire >= captured, so the larger of the two is used.
        const auto frame_wire = std::max<std::uint64_t>(wire_length, captured.size());
        const auto ip_wire = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(frame_wire - stripped.ip_offset, UINT32_MAX));
        outcome.packet = decode_ip(captured.subspan(stripped.ip_offset), ip_wire);
    }
    outcome.match = ruleset.evaluate(outcome.packet);
    return outcome;
}

void Totals::add(const PacketOutcome& outcome) noexcept
{
    ++packets;
    if (!outcome.is_ip) {
        ++not_ip;
        return;
    }
    if (outcome.match.action == Action::accept)
        ++accepted;
    else
        ++dropped;
    if (!outcome.packet.ok())
        ++malformed[static_cast<std::size_t>(outcome.packet.status)];
}

std::uint64_t Totals::malformed_total() const noexcept
{
    std::uint64_t total = 0;
    for (const std::uint64_t count : malformed)
        total += count;
    return total;
}

CaptureReport replay_capture(const std::string& path, const Ruleset& ruleset, Totals& totals,
                             const PacketCallback& on_packet)
{
    CaptureReport report;
    report.path = path;

    // Nanosecond precision keeps nanosecond files exact; libpcap scales
    // microsecond files up, so one precision serves both.
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    PcapHandle handle(
        pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf));
    if (!handle) {
        report.error = std::string("failed to open the capture: ") + errbuf;
        return report;
    }

    // For pcapng this is the link type of the first interface. libpcap 1.10
    // fails the read at the first packet after an interface description block
    // with another link type or snapshot length. So a mixed file is replayed
    // up to that point and then reported as an error at that packet index.
    const int dlt = pcap_datalink(handle.get());
    report.link_type = describe_dlt(dlt);
    const std::optional<LinkType> link = link_type_from_dlt(dlt);
    if (!link) {
        report.error = "unsupported link type " + report.link_type;
        return report;
    }

    for (;;) {
        pcap_pkthdr* header = nullptr;
        const u_char* data = nullptr;
        const int status = pcap_next_ex(handle.get(), &header, &data);
        if (status == PCAP_ERROR_BREAK)
            break;
        if (status != 1) {
            report.failed_index = report.packets + 1;
            report.error = pcap_geterr(handle.get());
            break;
        }

        PacketOutcome outcome = judge_frame(
            *link, std::span<const std::uint8_t>(data, header->caplen), header->len, ruleset);
        outcome.index = ++report.packets;
        totals.add(outcome);
        if (on_packet)
            on_packet(report, outcome);
    }
    return report;
}

} // namespace portwall::replay
