// Writes the captures that replay_test.py replays, with libpcap's own writer
// (pcap_open_dead + pcap_dump_open), one file per link type. It also writes
// a truncated capture, pcapng files that mix link types or snapshot lengths,
// and a capture with an unsupported link type. The verdict of every packet
// under tests/replay/rules.toml is listed in replay_test.py and in the
// .expect files beside this file.
//
// Usage: write-captures OUTPUT_DIRECTORY
#include <pcap/pcap.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t tcp = 6;
constexpr std::uint8_t udp = 17;
constexpr std::uint8_t icmp = 1;
constexpr std::uint8_t icmpv6 = 58;
constexpr std::uint8_t hop_by_hop = 0;
constexpr std::uint8_t fragment_header = 44;

void put16(Bytes& bytes, std::size_t offset, std::uint16_t value)
{
    bytes[offset] = static_cast<std::uint8_t>(value >> 8);
    bytes[offset + 1] = static_cast<std::uint8_t>(value);
}

void put32(Bytes& bytes, std::size_t offset, std::uint32_t value)
{
    put16(bytes, offset, static_cast<std::uint16_t>(value >> 16));
    put16(bytes, offset + 2, static_cast<std::uint16_t>(value));
}

Bytes concat(Bytes head, const Bytes& tail)
{
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
}

Bytes tcp_header(std::uint16_t sport, std::uint16_t dport)
{
    Bytes header(20, 0);
    put16(header, 0, sport);
    put16(header, 2, dport);
    header[12] = 5 << 4; // data offset: 5 words
    header[13] = 0x02;   // SYN
    return header;
}

Bytes udp_header(std::uint16_t sport, std::uint16_t dport, std::uint16_t length = 8)
{
    Bytes header(8, 0);
    put16(header, 0, sport);
    put16(header, 2, dport);
    put16(header, 4, length);
    return header;
}

Bytes icmp_echo(std::uint8_t type)
{
    Bytes header(8, 0);
    header[0] = type;
    return header;
}

struct Ipv4Options {
    std::uint16_t fragment_offset = 0; // in 8-byte units
    bool more_fragments = false;
    std::uint8_t header_words = 5; // IHL; below 5 makes the packet malformed
};

// An IPv4 packet from 198.18.0.1 to 198.18.0.2; checksums stay zero because
// the decoder does not verify them.
Bytes ipv4(std::uint8_t protocol, const Bytes& payload, Ipv4Options options = {})
{
    Bytes packet(20, 0);
    packet[0] = static_cast<std::uint8_t>(0x40 | options.header_words);
    put16(packet, 2, static_cast<std::uint16_t>(20 + payload.size()));
    put16(packet, 6,
          static_cast<std::uint16_t>((options.more_fragments ? 0x2000 : 0) |
                                     options.fragment_offset));
    packet[8] = 64;
    packet[9] = protocol;
    put32(packet, 12, 0xc6120001); // 198.18.0.1
    put32(packet, 16, 0xc6120002); // 198.18.0.2
    return concat(packet, payload);
}

// An IPv6 packet from 2001:db8::1 to 2001:db8::2; `payload` includes any
// extension headers, `next_header` names the first of them.
Bytes ipv6(std::uint8_t next_header, const Bytes& payload)
{
    Bytes packet(40, 0);
    packet[0] = 0x60;
    put16(packet, 4, static_cast<std::uint16_t>(payload.size()));
    packet[6] = next_header;
    packet[7] = 64;
    for (const std::size_t base : {8, 24}) {
        put32(packet, base, 0x20010db8);
        packet[base + 15] = base == 8 ? 1 : 2;
    }
    return concat(packet, payload);
}

Bytes ipv6_fragment(std::uint8_t next_header, std::uint16_t offset_units, bool more)
{
    Bytes header(8, 0);
    header[0] = next_header;
    put16(header, 2, static_cast<std::uint16_t>((offset_units << 3) | (more ? 1 : 0)));
    put32(header, 4, 0x1234);
    return header;
}

Bytes hop_by_hop_header(std::uint8_t next_header)
{
    Bytes header(8, 0); // length 0: 8 bytes, padded with a PadN option
    header[0] = next_header;
    header[2] = 1; // PadN
    header[3] = 4;
    return header;
}

Bytes arp_request()
{
    Bytes arp(28, 0);
    put16(arp, 0, 1);      // Ethernet
    put16(arp, 2, 0x0800); // IPv4
    arp[4] = 6;
    arp[5] = 4;
    put16(arp, 6, 1); // request
    return arp;
}

// The eight IP packets every link type carries, in this order.
std::vector<Bytes> common_ipv4_packets()
{
    return {
        ipv4(tcp, tcp_header(40000, 22)),  // drop by ssh
        ipv4(udp, udp_header(40001, 53)),  // accept by dns
        ipv4(tcp, tcp_header(40002, 80)),  // accept by web
        ipv4(icmp, icmp_echo(8)),          // accept by ping
    };
}

std::vector<Bytes> common_ipv6_packets()
{
    return {
        ipv6(tcp, tcp_header(40000, 22)),   // drop by ssh
        ipv6(udp, udp_header(40001, 53)),   // accept by dns
        ipv6(icmpv6, icmp_echo(128)),       // accept by ping
        ipv6(tcp, tcp_header(40003, 443)),  // drop by the policy
    };
}

bool is_ipv6(const Bytes& packet) { return !packet.empty() && (packet[0] >> 4) == 6; }

Bytes ethernet(std::uint16_t ethertype, const Bytes& payload,
               std::initializer_list<std::uint16_t> tag_types = {})
{
    Bytes frame(12, 0);
    frame[0] = 0x02; // locally administered addresses
    frame[6] = 0x02;
    frame[11] = 1;
    std::uint16_t vlan = 10;
    for (const std::uint16_t tag_type : tag_types) {
        Bytes tag(4, 0);
        put16(tag, 0, tag_type);
        put16(tag, 2, vlan++);
        frame = concat(frame, tag);
    }
    Bytes type(2, 0);
    put16(type, 0, ethertype);
    return concat(concat(frame, type), payload);
}

Bytes ethernet_ip(const Bytes& packet, std::initializer_list<std::uint16_t> tag_types = {})
{
    return ethernet(is_ipv6(packet) ? 0x86dd : 0x0800, packet, tag_types);
}

// Linux cooked capture v1: packet type, ARPHRD, address length, 8 address
// bytes, then the protocol (ethertype) at offset 14.
Bytes linux_sll(const Bytes& packet)
{
    Bytes header(16, 0);
    put16(header, 2, 1); // ARPHRD_ETHER
    put16(header, 4, 6);
    put16(header, 14, is_ipv6(packet) ? 0x86dd : 0x0800);
    return concat(header, packet);
}

// Linux cooked capture v2: protocol at offset 0, then interface index,
// ARPHRD, packet type, address length and 8 address bytes.
Bytes linux_sll2(const Bytes& packet)
{
    Bytes header(20, 0);
    put16(header, 0, is_ipv6(packet) ? 0x86dd : 0x0800);
    put32(header, 4, 1);
    put16(header, 8, 1);
    header[11] = 6;
    return concat(header, packet);
}

// BSD loopback: the address family in the writer's host byte order. 30 is
// AF_INET6 on macOS.
Bytes bsd_null(const Bytes& packet)
{
    const std::uint32_t family = is_ipv6(packet) ? 30 : 2;
    Bytes header(4, 0);
    std::memcpy(header.data(), &family, sizeof family);
    return concat(header, packet);
}

// OpenBSD loopback: the address family in network byte order; 24 is
// AF_INET6 on OpenBSD.
Bytes openbsd_loop(const Bytes& packet)
{
    Bytes header(4, 0);
    put32(header, 0, is_ipv6(packet) ? 24 : 2);
    return concat(header, packet);
}

class CaptureWriter {
public:
    CaptureWriter(const std::filesystem::path& path, int dlt)
        : dead_(pcap_open_dead(dlt, 65535)), dumper_(nullptr)
    {
        if (dead_ != nullptr)
            dumper_ = pcap_dump_open(dead_, path.c_str());
        if (dumper_ == nullptr) {
            std::fprintf(stderr, "write-captures: cannot write %s: %s\n", path.c_str(),
                         dead_ != nullptr ? pcap_geterr(dead_) : "pcap_open_dead failed");
            std::exit(1);
        }
    }
    ~CaptureWriter()
    {
        pcap_dump_close(dumper_);
        pcap_close(dead_);
    }
    CaptureWriter(const CaptureWriter&) = delete;
    CaptureWriter& operator=(const CaptureWriter&) = delete;

    void write(const Bytes& frame)
    {
        pcap_pkthdr header{};
        header.ts.tv_sec = 1700000000;
        header.ts.tv_usec = static_cast<suseconds_t>(count_++);
        header.caplen = static_cast<bpf_u_int32>(frame.size());
        header.len = header.caplen;
        pcap_dump(reinterpret_cast<u_char*>(dumper_), &header, frame.data());
    }

private:
    pcap_t* dead_;
    pcap_dumper_t* dumper_;
    unsigned count_ = 0;
};

template <typename Framer>
void write_common(const std::filesystem::path& path, int dlt, Framer frame, bool with_ipv4,
                  bool with_ipv6)
{
    CaptureWriter writer(path, dlt);
    if (with_ipv4) {
        for (const Bytes& packet : common_ipv4_packets())
            writer.write(frame(packet));
    }
    if (with_ipv6) {
        for (const Bytes& packet : common_ipv6_packets())
            writer.write(frame(packet));
    }
}

// Frames 9 to 18 of ethernet.pcap: non-IP, fragments and malformed packets.
std::vector<Bytes> ethernet_extra_frames()
{
    Bytes short_tcp = ipv4(tcp, Bytes(10, 0)); // total length leaves 10 TCP bytes
    Bytes bad_udp = ipv6(udp, udp_header(40004, 53, 4));
    return {
        ethernet(0x0806, arp_request()),                                          // 9 not_ip
        ethernet_ip(ipv4(tcp, tcp_header(40005, 22), {0, true, 5})),              // 10 ssh
        ethernet_ip(ipv4(tcp, Bytes(16, 0), {185, false, 5})),                    // 11 policy
        ethernet_ip(ipv6(fragment_header,                                         // 12 web
                         concat(ipv6_fragment(tcp, 0, true), tcp_header(40006, 80)))),
        ethernet_ip(ipv6(fragment_header,                                         // 13 policy
                         concat(ipv6_fragment(udp, 100, false), Bytes(16, 0)))),
        ethernet_ip(ipv4(tcp, tcp_header(40007, 22), {0, false, 4})),             // 14 bad IHL
        ethernet_ip(short_tcp),                                                   // 15 truncated
        ethernet_ip(bad_udp),                                                     // 16 UDP length
        Bytes(10, 0x02),                                                          // 17 short frame
        ethernet_ip(ipv6(hop_by_hop,                                              // 18 ssh
                         concat(hop_by_hop_header(tcp), tcp_header(40008, 22)))),
    };
}

void write_ethernet(const std::filesystem::path& path)
{
    CaptureWriter writer(path, DLT_EN10MB);
    for (const Bytes& packet : common_ipv4_packets())
        writer.write(ethernet_ip(packet));
    for (const Bytes& packet : common_ipv6_packets())
        writer.write(ethernet_ip(packet));
    for (const Bytes& frame : ethernet_extra_frames())
        writer.write(frame);
}

// Cut ethernet.pcap in the middle of the third packet's data.
void write_truncated(const std::filesystem::path& source, const std::filesystem::path& path)
{
    std::filesystem::copy_file(source, path, std::filesystem::copy_options::overwrite_existing);
    const std::uintmax_t file_header = 24;
    const std::uintmax_t record_header = 16;
    const std::uintmax_t first_two = 2 * record_header +
                                     ethernet_ip(common_ipv4_packets()[0]).size() +
                                     ethernet_ip(common_ipv4_packets()[1]).size();
    std::filesystem::resize_file(path, file_header + first_two + record_header + 10);
}

// pcapng block: type, total length, body padded to 4 bytes, total length
// again, all little-endian.
void append_block(Bytes& file, std::uint32_t type, Bytes body)
{
    body.resize((body.size() + 3) / 4 * 4, 0);
    const auto total = static_cast<std::uint32_t>(body.size() + 12);
    const auto append_le32 = [&file](std::uint32_t value) {
        for (int shift = 0; shift < 32; shift += 8)
            file.push_back(static_cast<std::uint8_t>(value >> shift));
    };
    append_le32(type);
    append_le32(total);
    file.insert(file.end(), body.begin(), body.end());
    append_le32(total);
}

Bytes le_words(std::initializer_list<std::uint32_t> words)
{
    Bytes bytes;
    for (const std::uint32_t word : words) {
        for (int shift = 0; shift < 32; shift += 8)
            bytes.push_back(static_cast<std::uint8_t>(word >> shift));
    }
    return bytes;
}

// A pcapng file whose second interface has another link type: Ethernet, one
// packet, then an interface with LINKTYPE_RAW and one raw IPv4 packet.
void write_mixed_pcapng(const std::filesystem::path& path)
{
    Bytes file;
    // Section header: byte-order magic, version 1.0, section length unknown (-1).
    append_block(file, 0x0A0D0D0A, le_words({0x1A2B3C4D, 0x00000001, 0xffffffff, 0xffffffff}));
    append_block(file, 1, le_words({1, 65535}));   // interface 0: Ethernet, snap length
    const Bytes frame = ethernet_ip(common_ipv4_packets()[0]);
    const auto length = static_cast<std::uint32_t>(frame.size());
    append_block(file, 6, concat(le_words({0, 0, 0, length, length}), frame));
    append_block(file, 1, le_words({101, 65535})); // interface 1: raw IP
    const Bytes raw = common_ipv4_packets()[0];
    const auto raw_length = static_cast<std::uint32_t>(raw.size());
    append_block(file, 6, concat(le_words({1, 0, 0, raw_length, raw_length}), raw));

    std::ofstream output(path, std::ios::binary);
    output.write(reinterpret_cast<const char*>(file.data()),
                 static_cast<std::streamsize>(file.size()));
}

// A pcapng file with two Ethernet interfaces of different snapshot lengths,
// which libpcap 1.10 rejects at the first packet after the second interface.
void write_snap_length_pcapng(const std::filesystem::path& path)
{
    Bytes file;
    append_block(file, 0x0A0D0D0A, le_words({0x1A2B3C4D, 0x00000001, 0xffffffff, 0xffffffff}));
    append_block(file, 1, le_words({1, 65535}));
    append_block(file, 1, le_words({1, 1000}));
    const Bytes frame = ethernet_ip(common_ipv6_packets()[0]);
    const auto length = static_cast<std::uint32_t>(frame.size());
    append_block(file, 6, concat(le_words({0, 0, 0, length, length}), frame));

    std::ofstream output(path, std::ios::binary);
    output.write(reinterpret_cast<const char*>(file.data()),
                 static_cast<std::streamsize>(file.size()));
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: write-captures OUTPUT_DIRECTORY\n");
        return 2;
    }
    const std::filesystem::path out(argv[1]);
    std::filesystem::create_directories(out);

    const auto identity = [](const Bytes& packet) { return packet; };
    write_ethernet(out / "ethernet.pcap");
    write_common(out / "vlan.pcap", DLT_EN10MB,
                 [](const Bytes& packet) { return ethernet_ip(packet, {0x8100}); }, true, true);
    write_common(out / "qinq.pcap", DLT_EN10MB,
                 [](const Bytes& packet) { return ethernet_ip(packet, {0x88a8, 0x8100}); }, true,
                 true);
    write_common(out / "sll.pcap", DLT_LINUX_SLL, linux_sll, true, true);
    write_common(out / "sll2.pcap", DLT_LINUX_SLL2, linux_sll2, true, true);
    write_common(out / "raw.pcap", DLT_RAW, identity, true, true);
    write_common(out / "ipv4.pcap", DLT_IPV4, identity, true, false);
    write_common(out / "ipv6.pcap", DLT_IPV6, identity, false, true);
    write_common(out / "null.pcap", DLT_NULL, bsd_null, true, true);
    write_common(out / "loop.pcap", DLT_LOOP, openbsd_loop, true, true);
    write_common(out / "wifi.pcap", DLT_IEEE802_11, identity, true, false);
    write_truncated(out / "ethernet.pcap", out / "truncated.pcap");
    write_mixed_pcapng(out / "mixed.pcapng");
    write_snap_length_pcapng(out / "snap-length.pcapng");
    return 0;
}
