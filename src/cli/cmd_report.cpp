// `portwall list|status|confirm`: read the daemon's rules and counters, and
// confirm a change made with --confirm.
#include "cli/control_client.hpp"

#include "control/report.hpp"

#include <iostream>
#include <memory>

namespace portwall::cli {

namespace {

struct ReportOptions {
    ClientOptions client;
    bool json = false;
};

void print_list(const control::Reply& reply, bool json)
{
    if (json)
        std::cout << reply.data.dump(2) << '\n';
    else
        std::cout << control::format_rules_report(reply.data);
}

void print_status(const control::Reply& reply, bool json)
{
    if (json)
        std::cout << reply.data.dump(2) << '\n';
    else
        std::cout << control::format_status_report(reply.data);
}

} // namespace

void add_report_commands(CLI::App& app, int& exit_status)
{
    auto list = std::make_shared<ReportOptions>();
    CLI::App* list_command = app.add_subcommand(
        "list", "Number every rule in force, in the order tried, with its origin and counters.");
    list_command->add_flag("--json", list->json, "Print one JSON object for scripts.");
    add_client_options(*list_command, list->client, true);
    list_command->callback([list, &exit_status] {
        control::Request request;
        request.command = control::Command::list;
        exit_status = run_request(list->client, request, print_list, list->json);
    });

    auto status = std::make_shared<ReportOptions>();
    CLI::App* status_command = app.add_subcommand(
        "status", "Show whether the daemon runs, its rules, counters and kernel queue counters; "
                  "exit status 3 when it is not running.");
    status_command->add_flag("--json", status->json, "Print one JSON object for scripts.");
    add_client_options(*status_command, status->client, false);
    status_command->callback([status, &exit_status] {
        control::Request request;
        request.command = control::Command::status;
        exit_status = run_request(status->client, request, print_status, status->json);
    });

    auto confirm = std::make_shared<ReportOptions>();
    CLI::App* confirm_command =
        app.add_subcommand("confirm", "Keep the change made with --confirm SECONDS and save it.");
    add_client_options(*confirm_command, confirm->client, false);
    confirm_command->callback([confirm, &exit_status] {
        control::Request request;
        request.command = control::Command::confirm;
        exit_status = run_request(confirm->client, request, nullptr, false);
    });
}

} // namespace portwall::cli
