// Classifier benchmark: the linear reference, the compiled classifier and
// libpcap's BPF over one rule file and one ClassBench trace.
//
// Each lookup time is the median over several repetitions of a whole pass
// over the packets, divided by the packet count. Times are the thread's CPU
// time (CLOCK_THREAD_CPUTIME_ID), so that time spent descheduled on a busy
// machine is not counted. Cache contention from other processes still is. The compiled classifier is
// also checked packet by packet against the linear reference. The last line
// of the output is machine-readable (see print_summary).
#include "bpf_baseline.hpp"
#include "classbench.hpp"

#include "classify/compiled.hpp"
#include "classify/linear.hpp"
#include "rules/compiler.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

using namespace portwall;
using namespace portwall::bench;

namespace {

// Nanoseconds of CPU time this thread has used.
double thread_cpu_ns()
{
    timespec now{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
}

struct Options {
    std::string rules_path;
    std::string trace_path;
    unsigned repetitions = 5;
    std::size_t bpf_max_rules = 2000;
    // Rule evaluations one timed linear or BPF pass may cost; the pass uses
    // the first budget / rules packets of the trace (at least 1,000).
    double slow_pass_budget = 3e8;
    unsigned mismatch_examples = 5;
    CompiledLimits limits;
};

double elapsed_ns(double start)
{
    return thread_cpu_ns() - start;
}

double median(std::vector<double> values)
{
    std::sort(values.begin(), values.end());
    const std::size_t middle = values.size() / 2;
    return values.size() % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

RuleTable load_rules(const std::string& path)
{
    if (is_classbench_rules(path))
        return read_classbench_rules(path);

    CompileResult result = compile_rules_file(path);
    std::string text;
    {
        std::ifstream in(path);
        std::stringstream buffer;
        buffer << in.rdbuf();
        text = buffer.str();
    }
    for (const Diagnostic& diagnostic : result.diagnostics)
        std::cerr << format_diagnostic(diagnostic, text) << '\n';
    if (!result.ok())
        throw std::runtime_error(path + ": rule file has errors; see the diagnostics above");
    return std::move(result.rules->table);
}

// Median ns per lookup of `lookup` over the first `count` packets.
template <typename Lookup>
double time_lookups(std::size_t count, unsigned repetitions, Lookup lookup)
{
    std::vector<double> per_lookup;
    std::uint64_t sink = 0;
    for (unsigned r = 0; r <= repetitions; ++r) {
        const double start = thread_cpu_ns();
        for (std::size_t i = 0; i < count; ++i)
            sink += lookup(i);
        const double ns = elapsed_ns(start) / static_cast<double>(count);
        if (r > 0) // the first pass warms caches and is not counted
            per_lookup.push_back(ns);
    }
    // Keeps the compiler from dropping the lookups as unused.
    if (sink == 42)
        std::fputs("", stdout);
    return median(per_lookup);
}

std::size_t sample_size(const Options& options, std::size_t rules, std::size_t packets)
{
    const double budget = options.slow_pass_budget / static_cast<double>(std::max<std::size_t>(rules, 1));
    return std::min(packets, std::max<std::size_t>(1000, static_cast<std::size_t>(budget)));
}

std::string rule_text(std::uint32_t index)
{
    return index == Match::policy ? "policy" : "rule " + std::to_string(index + 1);
}

struct Figures {
    double linear_ns = 0;
    double compiled_ns = 0;
    double bpf_ns = -1; // negative: skipped
    double compile_ms = 0;
    std::size_t bytes = 0;
    std::size_t mismatches = 0;
};

void print_rate(const char* name, double ns, std::size_t sampled, std::size_t packets)
{
    std::printf("%-9s %10.1f ns/lookup %9.2f Mpps  (%zu of %zu packets per pass)\n", name, ns,
                1e3 / ns, sampled, packets);
}

int run(const Options& options)
{
    const RuleTable table = load_rules(options.rules_path);
    const std::vector<TraceEntry> trace = read_classbench_trace(options.trace_path);
    if (trace.empty())
        throw std::runtime_error(options.trace_path + ": trace has no packets");
    std::vector<PacketView> packets;
    packets.reserve(trace.size());
    for (const TraceEntry& entry : trace)
        packets.push_back(packet_from_trace(entry));
    const std::size_t rules = table.rules.size();
    std::printf("rules %zu from %s, packets %zu from %s, %u repetitions\n", rules,
                options.rules_path.c_str(), packets.size(), options.trace_path.c_str(),
                options.repetitions);

    Figures figures;
    std::vector<double> compile_ms;
    std::unique_ptr<CompiledClassifier> compiled;
    for (unsigned r = 0; r < std::max(3u, options.repetitions); ++r) {
        const double start = thread_cpu_ns();
        compiled = std::make_unique<CompiledClassifier>(table, options.limits);
        compile_ms.push_back(elapsed_ns(start) / 1e6);
    }
    figures.compile_ms = median(compile_ms);
    figures.bytes = compiled->memory_bytes();
    const CompiledStats stats = compiled->stats();
    std::printf("compiled: %.2f ms to compile, %zu bytes (%.1f per rule), %zu trees, %zu boxes, %zu nodes, "
                "%zu boxes in leaves, largest leaf %zu, depth %zu, %zu rules in the side table\n",
                figures.compile_ms, figures.bytes, static_cast<double>(figures.bytes) / std::max<std::size_t>(rules, 1),
                stats.trees, stats.boxes, stats.nodes, stats.leaf_entries, stats.max_leaf, stats.depth,
                stats.side_rules);

    const LinearClassifier linear(table);
    std::vector<std::uint32_t> expected(packets.size());
    for (std::size_t i = 0; i < packets.size(); ++i)
        expected[i] = linear.classify(packets[i]).rule;

    const Classifier& compiled_classifier = *compiled;
    for (std::size_t i = 0; i < packets.size(); ++i) {
        const std::uint32_t got = compiled_classifier.classify(packets[i]).rule;
        if (got == expected[i])
            continue;
        if (figures.mismatches++ < options.mismatch_examples)
            std::printf("mismatch: packet %zu: linear %s, compiled %s\n", i + 1,
                        rule_text(expected[i]).c_str(), rule_text(got).c_str());
    }

    const std::size_t linear_sample = sample_size(options, rules, packets.size());
    const Classifier& linear_classifier = linear;
    figures.linear_ns = time_lookups(linear_sample, options.repetitions,
                                     [&](std::size_t i) { return linear_classifier.classify(packets[i]).rule; });
    figures.compiled_ns = time_lookups(packets.size(), options.repetitions,
                                       [&](std::size_t i) { return compiled_classifier.classify(packets[i]).rule; });
    print_rate("linear", figures.linear_ns, linear_sample, packets.size());
    print_rate("compiled", figures.compiled_ns, packets.size(), packets.size());

    if (rules <= options.bpf_max_rules) {
        const double start = thread_cpu_ns();
        const BpfBaseline bpf(table);
        const double bpf_compile_ms = elapsed_ns(start) / 1e6;
        std::vector<RawPacket> raw;
        raw.reserve(packets.size());
        for (const PacketView& packet : packets)
            raw.push_back(synthesize_packet(packet));
        std::size_t bpf_mismatches = 0;
        for (std::size_t i = 0; i < raw.size(); ++i)
            bpf_mismatches += bpf.first_match(raw[i]) != expected[i] ? 1 : 0;
        const std::size_t bpf_sample = sample_size(options, rules, packets.size());
        figures.bpf_ns = time_lookups(bpf_sample, options.repetitions,
                                      [&](std::size_t i) { return bpf.first_match(raw[i]); });
        print_rate("bpf", figures.bpf_ns, bpf_sample, packets.size());
        std::printf("bpf: %.1f ms to compile %zu filters, %zu instructions, %zu mismatches against linear\n",
                    bpf_compile_ms, rules, bpf.instruction_count(), bpf_mismatches);
    } else {
        std::printf("bpf: skipped, %zu rules is above --bpf-max-rules %zu\n", rules, options.bpf_max_rules);
    }
    std::printf("compiled is %.1fx faster than linear, %zu mismatches against linear\n",
                figures.linear_ns / figures.compiled_ns, figures.mismatches);

    std::string bpf_text = "skipped";
    if (figures.bpf_ns >= 0) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%.1f", figures.bpf_ns);
        bpf_text = buffer;
    }
    std::printf("classify rules=%zu packets=%zu linear_ns=%.1f compiled_ns=%.1f bpf_ns=%s compile_ms=%.2f "
                "bytes=%zu mismatches=%zu\n",
                rules, packets.size(), figures.linear_ns, figures.compiled_ns, bpf_text.c_str(),
                figures.compile_ms, figures.bytes, figures.mismatches);
    return figures.mismatches == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    Options options;
    CLI::App app{"Time the linear, compiled and BPF classifiers over a rule file and a ClassBench trace"};
    app.add_option("--rules", options.rules_path, "portwall TOML rule file or ClassBench rule file")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option("--trace", options.trace_path, "ClassBench trace file")->required()->check(CLI::ExistingFile);
    app.add_option("--repetitions", options.repetitions, "timed passes per classifier (median is reported)")
        ->check(CLI::Range(1u, 1000u));
    app.add_option("--bpf-max-rules", options.bpf_max_rules, "skip BPF above this many rules");
    app.add_option("--slow-pass-budget", options.slow_pass_budget,
                   "rule evaluations per timed linear or BPF pass; bounds its packet sample");
    app.add_option("--leaf-size", options.limits.leaf_size, "boxes a compiled leaf may hold before it is split");
    app.add_option("--max-boxes-per-rule", options.limits.max_boxes_per_rule,
                   "boxes a rule may expand into before it moves to the side table");
    CLI11_PARSE(app, argc, argv);

    try {
        return run(options);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "classify: %s\n", error.what());
        return 2;
    }
}
