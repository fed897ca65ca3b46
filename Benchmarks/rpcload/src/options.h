/* Command-line options. */
#ifndef RPCLOAD_OPTIONS_H
#define RPCLOAD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct options {
    char *host;
    char *port;
    unsigned connections;   /* -c */
    unsigned streams;       /* -m: concurrent calls per connection */
    double rate;            /* --rate: calls/s in total; 0 = closed loop */
    double duration;        /* measured seconds, after the warm-up */
    double warmup;
    double drain;           /* how long calls still running at the end may take */
    double deadline;        /* grpc-timeout per call, seconds; 0 = none */
    uint64_t seed;
    const char *mix_file;   /* positional MIXFILE */
    const char *method;     /* --method, instead of a mix file */
    const char *text;       /* --text */
    const char *data_file;  /* --data */
    const char **headers;   /* -H, in order */
    size_t header_count;
    const char **proto_paths; /* --proto-path, in order */
    size_t proto_path_count;
    const char *protoc;
    const char *json_file;  /* --json */
    bool json_stdout;       /* --format json */
    bool list_methods;
    bool quiet;             /* no progress lines on stderr */
    bool no_decode;         /* --no-decode: frame and count messages, skip protobuf-c */
    bool busy_poll;         /* --busy-poll: never sleep in epoll_wait; pace by the clock */
};

/* Parses argv; exits with status 2 and a message on a usage error, 0 for
 * --help. */
void options_parse(struct options *options, int argc, char **argv);
void options_free(struct options *options);

#endif
