/* The load itself: one thread, one epoll loop over every connection, and
 * the schedule that decides when calls start.
 *
 * Closed loop (no --rate): every connection keeps -m calls running; each
 * finished call is replaced at once. Open loop (--rate R): call i is due
 * at start + i/R whatever happened before; it goes out on any connection
 * with a free stream, and its latency is measured from when it was due, so
 * time spent waiting behind a slow server is counted (no coordinated
 * omission). A timerfd paces the sends at nanosecond resolution. */
#ifndef RPCLOAD_DRIVER_H
#define RPCLOAD_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netdb.h>
#include <nghttp2/nghttp2.h>

#include "connection.h"
#include "mix.h"
#include "options.h"
#include "stats.h"

/* The header block of one mix entry, built once. */
struct request_headers {
    nghttp2_nv *nv;
    size_t count;
};

struct driver {
    const struct options *options;
    const struct mix *mix;
    struct stats *stats;
    struct addrinfo *addresses;
    int epoll_fd;
    int timer_fd;
    nghttp2_session_callbacks *callbacks;
    struct request_headers *headers; /* per mix entry */
    char *authority;
    char timeout_header[32];

    struct connection *connections;
    unsigned connection_count;
    unsigned next_connection; /* round robin for the open loop */
    uint64_t random_state;

    uint64_t start_ns;         /* warm-up begins */
    uint64_t measure_start_ns; /* warm-up ends, measuring begins */
    uint64_t end_ns;           /* no call is started (closed) or due (open) after this */
    uint64_t drain_deadline_ns;
    uint64_t last_completion_ns; /* of a measured call */
    bool running;
    double period_ns;          /* open loop: time between due calls */
    uint64_t next_due;         /* open loop: index of the next call to send */
    uint64_t timer_armed_for;
};

/* Resolves the target and prepares connections and headers; -1 with a
 * message on failure. */
int driver_init(struct driver *driver, const struct options *options, const struct mix *mix, struct stats *stats);

/* Opens every connection and waits (up to 10 s) for each server's SETTINGS;
 * -1 with a message when any fails. */
int driver_connect(struct driver *driver);

/* Runs warm-up, measurement and drain. */
void driver_run(struct driver *driver);

void driver_free(struct driver *driver);

/* For calls and connections. */
uint64_t driver_random(struct driver *driver);
bool driver_in_window(const struct driver *driver, uint64_t ns);
/* From a signal handler: the first call ends the run early, as if the time
 * were up; the second also cuts the drain short. */
void driver_stop(void);

#endif
