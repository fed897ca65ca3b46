#define _GNU_SOURCE
#include "driver.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "clock.h"
#include "grpc_wire.h"

#define CONNECT_TIMEOUT_NS (10 * NS_PER_S)
#define MAX_EVENTS 64

/* Signals counted: the first ends the measurement (calls in flight may
 * finish), a second one ends the drain too. */
static volatile sig_atomic_t stop_requested;

void driver_stop(void) {
    if (stop_requested < 2) stop_requested++;
}

uint64_t driver_random(struct driver *driver) {
    /* SplitMix64: fast, and a fixed seed makes a mix's sequence repeatable. */
    uint64_t z = (driver->random_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

bool driver_in_window(const struct driver *driver, uint64_t ns) {
    return ns >= driver->measure_start_ns && ns < driver->end_ns;
}

static nghttp2_nv header(const char *name, const char *value) {
    /* The strings outlive every session, so nghttp2 need not copy them. */
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                     NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
    return nv;
}

static int build_headers(struct driver *driver) {
    const struct mix *mix = driver->mix;
    driver->headers = calloc(mix->count, sizeof *driver->headers);
    if (!driver->headers) return -1;
    if (driver->options->deadline > 0)
        grpc_format_timeout(seconds_to_ns(driver->options->deadline), driver->timeout_header,
                            sizeof driver->timeout_header);
    for (size_t i = 0; i < mix->count; i++) {
        struct request_headers *headers = &driver->headers[i];
        headers->nv = calloc(8 + mix->metadata_count, sizeof *headers->nv);
        if (!headers->nv) return -1;
        size_t n = 0;
        headers->nv[n++] = header(":method", "POST");
        headers->nv[n++] = header(":scheme", "http");
        headers->nv[n++] = header(":path", mix->entries[i].path);
        headers->nv[n++] = header(":authority", driver->authority);
        headers->nv[n++] = header("content-type", "application/grpc");
        headers->nv[n++] = header("te", "trailers");
        headers->nv[n++] = header("user-agent", "rpcload/1.0");
        if (driver->timeout_header[0]) headers->nv[n++] = header("grpc-timeout", driver->timeout_header);
        for (size_t m = 0; m < mix->metadata_count; m++)
            headers->nv[n++] = header(mix->metadata[m].name, mix->metadata[m].value);
        headers->count = n;
    }
    return 0;
}

int driver_init(struct driver *driver, const struct options *options, const struct mix *mix, struct stats *stats) {
    memset(driver, 0, sizeof *driver);
    driver->options = options;
    driver->mix = mix;
    driver->stats = stats;
    driver->epoll_fd = -1;
    driver->timer_fd = -1;
    driver->random_state = options->seed;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int error = getaddrinfo(options->host, options->port, &hints, &driver->addresses);
    if (error != 0) {
        fprintf(stderr, "rpcload: cannot resolve %s:%s: %s\n", options->host, options->port, gai_strerror(error));
        return -1;
    }
    bool v6 = strchr(options->host, ':') != NULL;
    if (asprintf(&driver->authority, v6 ? "[%s]:%s" : "%s:%s", options->host, options->port) < 0) return -1;
    if (build_headers(driver) != 0) return -1;

    driver->callbacks = connection_callbacks();
    driver->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    driver->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!driver->callbacks || driver->epoll_fd < 0 || driver->timer_fd < 0) {
        perror("rpcload: setup");
        return -1;
    }
    /* The timer's events carry the driver itself, connections' their own
     * pointer: that is how the loop tells them apart. */
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = driver};
    if (epoll_ctl(driver->epoll_fd, EPOLL_CTL_ADD, driver->timer_fd, &event) != 0) {
        perror("rpcload: epoll");
        return -1;
    }
    driver->connections = calloc(options->connections, sizeof *driver->connections);
    if (!driver->connections) return -1;
    driver->connection_count = options->connections;
    for (unsigned i = 0; i < options->connections; i++)
        if (connection_init(&driver->connections[i], driver, i, options->streams) != 0) return -1;
    return 0;
}

static void dispatch(struct driver *driver, int timeout_ms) {
    struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(driver->epoll_fd, events, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (events[i].data.ptr == driver) {
            uint64_t expirations;
            while (read(driver->timer_fd, &expirations, sizeof expirations) > 0) {}
            continue;
        }
        connection_on_event(events[i].data.ptr, events[i].events);
    }
}

static int timeout_until(uint64_t now, uint64_t when) {
    if (when <= now) return 0;
    uint64_t ms = (when - now + NS_PER_MS - 1) / NS_PER_MS;
    return ms > 1000 ? 1000 : (int)ms;
}

int driver_connect(struct driver *driver) {
    for (unsigned i = 0; i < driver->connection_count; i++) connection_open(&driver->connections[i]);
    uint64_t deadline = now_ns() + CONNECT_TIMEOUT_NS;
    for (;;) {
        unsigned ready = 0;
        for (unsigned i = 0; i < driver->connection_count; i++) {
            struct connection *connection = &driver->connections[i];
            if (connection->state == CONNECTION_CLOSED) {
                fprintf(stderr, "rpcload: cannot connect to %s\n", driver->authority);
                return -1;
            }
            ready += connection->settings_received;
        }
        if (ready == driver->connection_count) break;
        uint64_t now = now_ns();
        if (now >= deadline || stop_requested) {
            fprintf(stderr, "rpcload: %s did not answer with HTTP/2 SETTINGS within 10 s (is it a plaintext gRPC server?)\n",
                    driver->authority);
            return -1;
        }
        dispatch(driver, timeout_until(now, deadline));
    }
    /* Failures while connecting are setup errors, reported above, not part
     * of the measurement. */
    driver->stats->connection_failures = 0;
    return 0;
}

static long pick_entry(struct driver *driver) {
    return (long)(mix_pick(driver->mix, driver_random(driver)) - driver->mix->entries);
}

static void start_on(struct driver *driver, struct connection *connection, uint64_t intended) {
    if (call_start(connection, pick_entry(driver), intended, intended >= driver->measure_start_ns) != 0) {
        /* nghttp2 will open no more streams here (ids used up, or GOAWAY):
         * let the calls on it finish and replace it. */
        connection->going_away = true;
    }
}

/* Closed loop: top every connection up to its -m calls. */
static void issue_closed(struct driver *driver) {
    uint64_t now = now_ns();
    for (unsigned i = 0; i < driver->connection_count; i++) {
        struct connection *connection = &driver->connections[i];
        for (unsigned free = connection_free_slots(connection); free > 0; free--) {
            start_on(driver, connection, now);
            if (connection->going_away) break;
        }
    }
}

static uint64_t due_time(const struct driver *driver, uint64_t index) {
    return driver->start_ns + (uint64_t)((double)index * driver->period_ns);
}

static struct connection *next_free_connection(struct driver *driver) {
    for (unsigned tried = 0; tried < driver->connection_count; tried++) {
        struct connection *connection = &driver->connections[driver->next_connection];
        driver->next_connection = (driver->next_connection + 1) % driver->connection_count;
        if (connection_free_slots(connection) > 0) return connection;
    }
    return NULL;
}

/* Open loop: send every call that is due, each stamped with its due time;
 * calls with no free stream wait (and their wait counts as latency). */
static void issue_open(struct driver *driver) {
    uint64_t now = now_ns();
    for (;;) {
        uint64_t due = due_time(driver, driver->next_due);
        if (due > now || due >= driver->end_ns) break;
        struct connection *connection = next_free_connection(driver);
        if (!connection) {
            /* Calls due by now (none after the end) that are still waiting. */
            uint64_t until = now < driver->end_ns ? now : driver->end_ns - 1;
            uint64_t due_count = (uint64_t)((double)(until - driver->start_ns) / driver->period_ns) + 1;
            if (due_count > driver->next_due && due_count - driver->next_due > driver->stats->max_backlog)
                driver->stats->max_backlog = due_count - driver->next_due;
            break;
        }
        start_on(driver, connection, due);
        driver->next_due++;
    }
    /* Wake exactly when the next call is due (busy polling looks at the
     * clock on every turn instead). */
    uint64_t due = due_time(driver, driver->next_due);
    if (!driver->options->busy_poll && due < driver->end_ns && due > now && due != driver->timer_armed_for) {
        struct itimerspec when = {.it_value = {.tv_sec = (time_t)(due / NS_PER_S), .tv_nsec = (long)(due % NS_PER_S)}};
        timerfd_settime(driver->timer_fd, TFD_TIMER_ABSTIME, &when, NULL);
        driver->timer_armed_for = due;
    }
}

static unsigned in_flight(const struct driver *driver) {
    unsigned total = 0;
    for (unsigned i = 0; i < driver->connection_count; i++) total += driver->connections[i].in_flight;
    return total;
}

static bool backlog_left(const struct driver *driver) {
    return driver->period_ns > 0 && due_time(driver, driver->next_due) < driver->end_ns;
}

static uint64_t next_reconnect(struct driver *driver, uint64_t now) {
    uint64_t earliest = UINT64_MAX;
    for (unsigned i = 0; i < driver->connection_count; i++) {
        struct connection *connection = &driver->connections[i];
        if (connection->state != CONNECTION_CLOSED) continue;
        if (connection->retry_at_ns <= now) connection_open(connection);
        else if (connection->retry_at_ns < earliest) earliest = connection->retry_at_ns;
    }
    return earliest;
}

void driver_run(struct driver *driver) {
    const struct options *options = driver->options;
    bool open_loop = options->rate > 0;
    driver->start_ns = now_ns();
    driver->measure_start_ns = driver->start_ns + seconds_to_ns(options->warmup);
    driver->end_ns = driver->measure_start_ns + seconds_to_ns(options->duration);
    driver->period_ns = open_loop ? (double)NS_PER_S / options->rate : 0;
    driver->running = true;
    bool draining = false;

    for (;;) {
        uint64_t now = now_ns();
        if (driver->running && (now >= driver->end_ns || stop_requested)) {
            driver->running = false;
            draining = true;
            if (stop_requested) driver->end_ns = now; /* what was measured ends here */
            driver->drain_deadline_ns = now + seconds_to_ns(options->drain);
        }
        if (draining && stop_requested >= 2) driver->drain_deadline_ns = now;
        /* Calls that were due in time are still sent while draining: they
         * are part of the schedule, only late. */
        if (open_loop) issue_open(driver);
        else if (driver->running) issue_closed(driver);
        for (unsigned i = 0; i < driver->connection_count; i++) connection_flush(&driver->connections[i]);

        uint64_t wake = driver->running ? driver->end_ns : driver->drain_deadline_ns;
        if (driver->running || backlog_left(driver)) {
            uint64_t reconnect = next_reconnect(driver, now);
            if (reconnect < wake) wake = reconnect;
        }
        if (draining && in_flight(driver) == 0 && !backlog_left(driver)) break;
        if (draining && now >= driver->drain_deadline_ns) {
            for (unsigned i = 0; i < driver->connection_count; i++) {
                connection_cancel_calls(&driver->connections[i]);
                connection_flush(&driver->connections[i]);
            }
            break;
        }
        dispatch(driver, options->busy_poll ? 0 : timeout_until(now, wake));
    }
    if (open_loop) {
        /* Due before the end but never sent: the server fell so far behind
         * that even the drain time did not let them out. */
        uint64_t due_total = (uint64_t)((double)(driver->end_ns - driver->start_ns) / driver->period_ns);
        if (due_time(driver, due_total) < driver->end_ns) due_total++;
        if (due_total > driver->next_due) driver->stats->unsent = due_total - driver->next_due;
    }
}

void driver_free(struct driver *driver) {
    if (driver->connections)
        for (unsigned i = 0; i < driver->connection_count; i++) connection_free(&driver->connections[i]);
    free(driver->connections);
    if (driver->headers)
        for (size_t i = 0; i < driver->mix->count; i++) free(driver->headers[i].nv);
    free(driver->headers);
    free(driver->authority);
    if (driver->callbacks) nghttp2_session_callbacks_del(driver->callbacks);
    if (driver->addresses) freeaddrinfo(driver->addresses);
    if (driver->epoll_fd >= 0) close(driver->epoll_fd);
    if (driver->timer_fd >= 0) close(driver->timer_fd);
}
