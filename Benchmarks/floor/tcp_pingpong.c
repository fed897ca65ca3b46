// tcp-pingpong: the loopback floor under every RPC benchmark. A client sends
// a fixed-size message over one TCP connection, the server echoes it, the
// client waits for all of it and sends the next: one round trip at a time,
// the least work any request/response protocol can do over this kernel.
//
//   tcp-pingpong --serve PORT                          echo server (one client at a time)
//   tcp-pingpong --connect HOST:PORT [--size N] [--warmup S] [--duration S]
//
// The client prints one JSON object: round trips per second and the round
// trip's p50/p90/p99/max in microseconds (exact, from every sample).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int full_io(int fd, char *buffer, size_t size, int writing) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = writing ? write(fd, buffer + done, size - done) : read(fd, buffer + done, size - done);
        if (n > 0) { done += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        return -1;  // closed or failed
    }
    return 0;
}

static void no_delay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int serve(int port) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 16) != 0) {
        perror("tcp-pingpong: listen");
        return 2;
    }
    printf("listening on %d\n", port);
    fflush(stdout);
    char buffer[65536];
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) continue;
        no_delay(fd);
        // Echo whatever arrives: the client sends one message at a time.
        for (;;) {
            ssize_t n = read(fd, buffer, sizeof buffer);
            if (n <= 0 || full_io(fd, buffer, (size_t)n, 1) != 0) break;
        }
        close(fd);
    }
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int client(const char *target, size_t size, double warmup, double duration) {
    char host[256];
    const char *colon = strrchr(target, ':');
    if (!colon || (size_t)(colon - target) >= sizeof host) { fprintf(stderr, "tcp-pingpong: HOST:PORT expected\n"); return 2; }
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = 0;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) { fprintf(stderr, "tcp-pingpong: bad host %s\n", host); return 2; }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) { perror("tcp-pingpong: connect"); return 2; }
    no_delay(fd);
    char *buffer = calloc(1, size);
    size_t capacity = 1 << 20, count = 0;
    double *samples = malloc(capacity * sizeof *samples);
    double start = now_seconds(), measure_from = start + warmup, end = measure_from + duration;
    for (;;) {
        double sent = now_seconds();
        if (sent >= end) break;
        if (full_io(fd, buffer, size, 1) != 0 || full_io(fd, buffer, size, 0) != 0) {
            fprintf(stderr, "tcp-pingpong: connection lost\n");
            return 1;
        }
        if (sent < measure_from) continue;
        if (count == capacity) samples = realloc(samples, (capacity *= 2) * sizeof *samples);
        samples[count++] = (now_seconds() - sent) * 1e6;
    }
    if (count == 0) { fprintf(stderr, "tcp-pingpong: no round trips measured\n"); return 1; }
    qsort(samples, count, sizeof *samples, compare_doubles);
#define AT(q) samples[(size_t)((double)(count - 1) * (q))]
    printf("{\"size\": %zu, \"round_trips\": %zu, \"round_trips_per_s\": %.1f, "
           "\"p50_us\": %.2f, \"p90_us\": %.2f, \"p99_us\": %.2f, \"max_us\": %.2f}\n",
           size, count, (double)count / duration, AT(0.5), AT(0.9), AT(0.99), samples[count - 1]);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    const char *target = NULL;
    int port = 0;
    size_t size = 64;
    double warmup = 1, duration = 5;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--serve") && value) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--connect") && value) target = argv[++i];
        else if (!strcmp(argv[i], "--size") && value) size = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && value) warmup = atof(argv[++i]);
        else if (!strcmp(argv[i], "--duration") && value) duration = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: tcp-pingpong --serve PORT | --connect HOST:PORT [--size N] [--warmup S] [--duration S]\n");
            return 2;
        }
    }
    if (port > 0) return serve(port);
    if (target && size > 0 && size <= 65536 && duration > 0) return client(target, size, warmup, duration);
    fprintf(stderr, "tcp-pingpong: --serve PORT or --connect HOST:PORT (size 1..65536) required\n");
    return 2;
}
