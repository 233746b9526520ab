/*
 * main.c - entry point of the `tasker` executable: global options and command dispatch.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "tasker/log.h"
#include "tasker/version.h"

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("tasker %s\n", tk_version());
    return TK_CLI_EXIT_OK;
}

static const tk_cli_command_t commands[] = {
    {"bench", "measure tasker on this machine: the seed's tables, JSON results, compare",
     tk_cmd_bench},
    {"db", "manage the database: migrations and the private development PostgreSQL", tk_cmd_db},
    {"dev", "run tasker locally on a private PostgreSQL", tk_cmd_dev},
    {"server", "run the orchestration server (REST API, retries, sweeper)", tk_cmd_server},
    {"template", "check and list task templates (YAML workflow definitions)", tk_cmd_template},
    {"task", "create, inspect and cancel tasks through the REST API", tk_cmd_task},
    {"worker", "run a worker: claim steps and run their handlers", tk_cmd_worker},
    {"version", "print the version", cmd_version},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: tasker [--log-level LEVEL] <command> [options]\n"
                 "\n"
                 "tasker runs workflows (DAGs of steps) on PostgreSQL.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n"
                 "Options:\n"
                 "  --log-level LEVEL  error, warn, info (default), debug or trace;\n"
                 "                     also TASKER_LOG_LEVEL\n"
                 "  -V, --version      print the version\n"
                 "  -h, --help         show this help\n"
                 "\n"
                 "Environment:\n"
                 "  DATABASE_URL       PostgreSQL to use; without it, commands that need a\n"
                 "                     database use a private cluster in ./.tasker/\n"
                 "\n"
                 "Run 'tasker <command> --help' for the options of a command.\n");
}

/* Apply a log level now and export it as TASKER_LOG_LEVEL, so a command's configuration
 * (file < environment < flags) keeps it above the file's log.level. */
static int set_log_level(const char *name)
{
    tk_log_level_t level;
    if (tk_log_level_parse(name, &level) != TK_OK) {
        fprintf(stderr,
                "tasker: unknown log level \"%s\" (use error, warn, info, debug or "
                "trace)\n",
                name);
        return TK_CLI_EXIT_USAGE;
    }
    tk_log_set_level(level);
    setenv("TASKER_LOG_LEVEL", name, 1);
    return TK_CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a peer that hung up is an error return, not a crash */
    const char *env_level = getenv("TASKER_LOG_LEVEL");
    if (env_level != NULL && env_level[0] != '\0' && set_log_level(env_level) != 0)
        return TK_CLI_EXIT_USAGE;

    static const struct option options[] = {
        {"log-level", required_argument, NULL, 'l'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    /* '+': stop at the first non-option, which is the command. */
    while ((opt = getopt_long(argc, argv, "+Vh", options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            if (set_log_level(optarg) != 0)
                return TK_CLI_EXIT_USAGE;
            break;
        case 'V':
            return cmd_version(0, NULL);
        case 'h':
            usage(stdout);
            return TK_CLI_EXIT_OK;
        default:
            fprintf(stderr, "Try 'tasker --help'.\n");
            return TK_CLI_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return TK_CLI_EXIT_USAGE;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            int sub_argc = argc - optind;
            char **sub_argv = argv + optind;
            optind = 0; /* fully reset getopt (GNU) for the command's own parsing */
            return commands[i].run(sub_argc, sub_argv);
        }
    }
    fprintf(stderr, "tasker: unknown command \"%s\"\nTry 'tasker --help'.\n", name);
    return TK_CLI_EXIT_USAGE;
}
