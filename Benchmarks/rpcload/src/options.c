#define _GNU_SOURCE
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fputs(
        "usage: rpcload [options] --target HOST:PORT MIXFILE\n"
        "       rpcload [options] --target HOST:PORT --method /pkg.Service/Method [--text TEXT | --data FILE]\n"
        "       rpcload --list-methods\n"
        "\n"
        "A gRPC load generator. MIXFILE lines are 'weight /pkg.Service/Method request'\n"
        "(protobuf text format, @FILE for a binary message, or empty); '-' reads stdin.\n"
        "\n"
        "  -t, --target HOST:PORT   server to load (plaintext HTTP/2; [v6addr]:port works)\n"
        "  -c, --connections N      connections (default 1)\n"
        "  -m, --streams N          concurrent calls per connection (default 1 closed loop,\n"
        "                           100 open loop)\n"
        "  -r, --rate R             open loop: R calls/s in total, evenly spaced; latency is\n"
        "                           measured from each call's scheduled time\n"
        "  -d, --duration S         measured seconds (default 10)\n"
        "  -w, --warmup S           seconds run first and not measured (default 0)\n"
        "      --drain S            how long calls running at the end may take (default 5)\n"
        "      --deadline S         send grpc-timeout with every call\n"
        "  -H, --header 'K: V'      metadata on every call (repeatable), e.g. 'x-tenant-id: demo'\n"
        "      --method PATH        call PATH instead of reading a mix file\n"
        "      --text TEXT          --method's request, protobuf text format\n"
        "      --data FILE          --method's request, binary protobuf ('-' = stdin)\n"
        "      --proto-path DIR     where .proto files live (repeatable; default the\n"
        "                           project's proto/ and /usr/include)\n"
        "      --protoc PATH        protoc to encode text requests (default: protoc)\n"
        "      --seed N             seed of the weighted choice (default 1)\n"
        "      --json FILE          also write the results as JSON to FILE\n"
        "      --format text|json   what goes to stdout (default text)\n"
        "  -q, --quiet              no progress messages on stderr\n"
        "      --no-decode          check each response's framing and status but do not\n"
        "                           decode its messages (when decoding, not the server,\n"
        "                           would limit the rate)\n"
        "      --busy-poll          never sleep: poll the sockets and the clock in a loop\n"
        "                           (the load core stays busy, so waking it up adds no\n"
        "                           latency to open-loop calls)\n"
        "      --list-methods       print the methods rpcload can call and exit\n"
        "\n"
        "Exit status: 0 when every call succeeded, 1 when any failed, 2 for a usage or\n"
        "setup error (bad mix, no connection).\n",
        out);
}

static void fail(const char *format, const char *value) {
    fprintf(stderr, "rpcload: ");
    fprintf(stderr, format, value);
    fprintf(stderr, "\n(rpcload --help for usage)\n");
    exit(2);
}

static double parse_seconds(const char *value, const char *name, bool allow_zero) {
    char *end = NULL;
    errno = 0;
    double seconds = strtod(value, &end);
    if (end && *end == 's' && end[1] == '\0') end++;
    if (end == value || *end != '\0' || errno != 0 || !isfinite(seconds) || seconds < 0 ||
        (!allow_zero && seconds == 0))
        fail("bad value for %s", name);
    return seconds;
}

static unsigned parse_count(const char *value, const char *name) {
    char *end = NULL;
    errno = 0;
    unsigned long count = strtoul(value, &end, 10);
    if (end == value || *end != '\0' || errno != 0 || count == 0 || count > 100000 || value[0] == '-')
        fail("bad value for %s", name);
    return (unsigned)count;
}

static void split_target(struct options *options, const char *target) {
    const char *colon;
    if (target[0] == '[') { /* [IPv6]:port */
        const char *close = strchr(target, ']');
        if (!close || close[1] != ':') fail("bad --target %s (want HOST:PORT)", target);
        options->host = strndup(target + 1, (size_t)(close - target - 1));
        colon = close + 1;
    } else {
        colon = strrchr(target, ':');
        if (!colon || colon == target) fail("bad --target %s (want HOST:PORT)", target);
        options->host = strndup(target, (size_t)(colon - target));
    }
    options->port = strdup(colon + 1);
    if (!options->host || !options->port || !*options->port) fail("bad --target %s (want HOST:PORT)", target);
}

static void append(const char ***list, size_t *count, const char *value) {
    const char **grown = realloc(*list, (*count + 1) * sizeof *grown);
    if (!grown) fail("%s", "out of memory");
    grown[(*count)++] = value;
    *list = grown;
}

enum {
    OPT_DRAIN = 256, OPT_DEADLINE, OPT_METHOD, OPT_TEXT, OPT_DATA, OPT_PROTO_PATH, OPT_PROTOC,
    OPT_SEED, OPT_JSON, OPT_FORMAT, OPT_LIST, OPT_HELP, OPT_NO_DECODE, OPT_BUSY_POLL,
};

void options_parse(struct options *options, int argc, char **argv) {
    memset(options, 0, sizeof *options);
    options->connections = 1;
    options->duration = 10;
    options->drain = 5;
    options->seed = 1;
    options->protoc = "protoc";

    static const struct option long_options[] = {
        {"target", required_argument, NULL, 't'},
        {"connections", required_argument, NULL, 'c'},
        {"streams", required_argument, NULL, 'm'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"header", required_argument, NULL, 'H'},
        {"quiet", no_argument, NULL, 'q'},
        {"drain", required_argument, NULL, OPT_DRAIN},
        {"deadline", required_argument, NULL, OPT_DEADLINE},
        {"no-decode", no_argument, NULL, OPT_NO_DECODE},
        {"busy-poll", no_argument, NULL, OPT_BUSY_POLL},
        {"method", required_argument, NULL, OPT_METHOD},
        {"text", required_argument, NULL, OPT_TEXT},
        {"data", required_argument, NULL, OPT_DATA},
        {"proto-path", required_argument, NULL, OPT_PROTO_PATH},
        {"protoc", required_argument, NULL, OPT_PROTOC},
        {"seed", required_argument, NULL, OPT_SEED},
        {"json", required_argument, NULL, OPT_JSON},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"list-methods", no_argument, NULL, OPT_LIST},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *target = NULL;
    bool streams_given = false;
    int option;
    while ((option = getopt_long(argc, argv, "t:c:m:r:d:w:H:qh", long_options, NULL)) != -1) {
        switch (option) {
        case 't': target = optarg; break;
        case 'c': options->connections = parse_count(optarg, "-c"); break;
        case 'm': options->streams = parse_count(optarg, "-m"); streams_given = true; break;
        case 'r': options->rate = parse_seconds(optarg, "--rate", false); break;
        case 'd': options->duration = parse_seconds(optarg, "--duration", false); break;
        case 'w': options->warmup = parse_seconds(optarg, "--warmup", true); break;
        case 'H': append(&options->headers, &options->header_count, optarg); break;
        case 'q': options->quiet = true; break;
        case OPT_NO_DECODE: options->no_decode = true; break;
        case OPT_BUSY_POLL: options->busy_poll = true; break;
        case OPT_DRAIN: options->drain = parse_seconds(optarg, "--drain", true); break;
        case OPT_DEADLINE: options->deadline = parse_seconds(optarg, "--deadline", false); break;
        case OPT_METHOD: options->method = optarg; break;
        case OPT_TEXT: options->text = optarg; break;
        case OPT_DATA: options->data_file = optarg; break;
        case OPT_PROTO_PATH: append(&options->proto_paths, &options->proto_path_count, optarg); break;
        case OPT_PROTOC: options->protoc = optarg; break;
        case OPT_SEED: {
            char *end = NULL;
            options->seed = strtoull(optarg, &end, 0);
            if (end == optarg || *end) fail("bad value for %s", "--seed");
            break;
        }
        case OPT_JSON: options->json_file = optarg; break;
        case OPT_FORMAT:
            if (strcmp(optarg, "json") == 0) options->json_stdout = true;
            else if (strcmp(optarg, "text") != 0) fail("--format is text or json, not %s", optarg);
            break;
        case OPT_LIST: options->list_methods = true; break;
        case 'h':
        case OPT_HELP: usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (options->list_methods) return;
    if (optind < argc) options->mix_file = argv[optind++];
    if (optind < argc) fail("unexpected argument %s", argv[optind]);
    if (!target) fail("%s", "--target HOST:PORT is required");
    split_target(options, target);
    if (!options->mix_file == !options->method) fail("%s", "give a MIXFILE or --method, not both or neither");
    if ((options->text || options->data_file) && !options->method) fail("%s", "--text and --data go with --method");
    if (options->text && options->data_file) fail("%s", "--text or --data, not both");
    if (!streams_given) options->streams = options->rate > 0 ? 100 : 1;
}

void options_free(struct options *options) {
    free(options->host);
    free(options->port);
    free(options->headers);
    free(options->proto_paths);
}
