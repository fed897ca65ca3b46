/* Self-tests of the pure parts of rpcload: the histogram's error bound and
 * the gRPC wire helpers. `make check` runs them; the rest of rpcload is
 * tested against a live server (see README.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_wire.h"
#include "histogram.h"

static int passed, failed;

#define CHECK(condition, ...)                                         \
    do {                                                              \
        if (condition) {                                              \
            passed++;                                                 \
        } else {                                                      \
            failed++;                                                 \
            fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                             \
            fputc('\n', stderr);                                      \
        }                                                             \
    } while (0)

static void test_buckets_tile_the_range(void) {
    /* Buckets are contiguous, increasing, and never wider than 1/128 of
     * their lower edge: that is the 1% bound. */
    uint64_t expected_low = 0;
    int bad = 0;
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
        uint64_t low, high;
        histogram_bucket_range(i, &low, &high);
        if (low != expected_low || high < low) bad++;
        if (low >= 256 && (double)(high - low + 1) / (double)low > 1.0 / 128 + 1e-12) bad++;
        expected_low = high + 1;
    }
    CHECK(bad == 0, "%d buckets out of order or too wide", bad);
    CHECK(expected_low > 60ULL * 1000000000ULL, "the top bucket ends at %llu ns, below 60 s",
          (unsigned long long)expected_low);
}

static int compare(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_percentiles_within_one_percent(void) {
    /* Log-uniform values from 1 us to 60 s: every percentile must be at or
     * above the exact one and within 1% of it. */
    static uint64_t values[200000];
    const size_t N = sizeof values / sizeof values[0];
    static struct histogram h;
    histogram_init(&h);
    uint64_t state = 12345;
    for (size_t i = 0; i < N; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        double unit = (double)(state >> 11) / 9007199254740992.0;
        values[i] = (uint64_t)(1000.0 * pow(6e7, unit));
        histogram_record(&h, values[i]);
    }
    qsort(values, N, sizeof values[0], compare);
    const double percentiles[] = {1, 10, 50, 90, 99, 99.9, 99.99};
    for (size_t p = 0; p < sizeof percentiles / sizeof percentiles[0]; p++) {
        size_t rank = (size_t)ceil(percentiles[p] / 100.0 * N);
        uint64_t exact = values[rank - 1];
        uint64_t got = histogram_percentile(&h, percentiles[p]);
        CHECK(got >= exact && (double)(got - exact) <= 0.01 * (double)exact, "p%g: %llu, exact %llu", percentiles[p],
              (unsigned long long)got, (unsigned long long)exact);
    }
    CHECK(histogram_percentile(&h, 100) == values[N - 1], "p100 is not the maximum");
    CHECK(h.min == values[0], "min");
    double sum = 0;
    for (size_t i = 0; i < N; i++) sum += (double)values[i];
    CHECK(fabs(histogram_mean(&h) - sum / N) < 1e-6 * sum / N, "mean");
}

static void test_small_and_merged(void) {
    struct histogram *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    histogram_init(a);
    histogram_init(b);
    CHECK(histogram_percentile(a, 50) == 0, "an empty histogram's p50 is 0");
    histogram_record(a, 100);
    histogram_record(a, 200);
    histogram_record(b, 300);
    histogram_merge(a, b);
    CHECK(a->total == 3 && a->min == 100 && a->max == 300, "merge keeps count, min and max");
    CHECK(histogram_percentile(a, 50) == 200, "p50 of 100, 200, 300 is %llu",
          (unsigned long long)histogram_percentile(a, 50));
    histogram_record(a, 1000ULL * 1000000000ULL); /* 1000 s: clamped, max exact */
    CHECK(a->max == 1000ULL * 1000000000ULL, "the maximum survives clamping");
    free(a);
    free(b);
}

struct collected {
    size_t count;
    size_t lengths[16];
    uint8_t first_bytes[16];
};

static bool collect(void *context, const uint8_t *data, size_t len) {
    struct collected *c = context;
    if (c->count < 16) {
        c->lengths[c->count] = len;
        c->first_bytes[c->count] = len ? data[0] : 0;
    }
    c->count++;
    return true;
}

static void test_reader_any_split(void) {
    /* Three messages (5 bytes, empty, 300 bytes) fed whole, then one byte
     * at a time: the same messages come out. */
    uint8_t stream[5 + 5 + 5 + 5 + 300];
    size_t n = 0;
    const size_t lengths[] = {5, 0, 300};
    for (size_t m = 0; m < 3; m++) {
        stream[n++] = 0;
        stream[n++] = 0;
        stream[n++] = 0;
        stream[n++] = (uint8_t)(lengths[m] >> 8);
        stream[n++] = (uint8_t)lengths[m];
        for (size_t i = 0; i < lengths[m]; i++) stream[n++] = (uint8_t)(m + 1);
    }
    const size_t chunks[] = {1, 7, n};
    for (size_t k = 0; k < 3; k++) {
        size_t chunk = chunks[k];
        struct grpc_reader reader;
        grpc_reader_init(&reader, 1 << 20);
        struct collected c = {0};
        for (size_t at = 0; at < n; at += chunk) {
            size_t len = n - at < chunk ? n - at : chunk;
            CHECK(grpc_reader_feed(&reader, stream + at, len, collect, &c) == GRPC_READER_OK, "feed");
        }
        CHECK(c.count == 3 && c.lengths[0] == 5 && c.lengths[1] == 0 && c.lengths[2] == 300 && c.first_bytes[2] == 3,
              "chunks of %zu: %zu messages", chunk, c.count);
        CHECK(!grpc_reader_partial(&reader), "nothing left over");
        grpc_reader_free(&reader);
    }
    struct grpc_reader reader;
    grpc_reader_init(&reader, 100);
    struct collected c = {0};
    const uint8_t compressed[] = {1, 0, 0, 0, 1, 42};
    CHECK(grpc_reader_feed(&reader, compressed, sizeof compressed, collect, &c) == GRPC_READER_COMPRESSED,
          "a compressed flag is refused");
    grpc_reader_reset(&reader);
    const uint8_t huge[] = {0, 0, 0, 1, 0};
    CHECK(grpc_reader_feed(&reader, huge, sizeof huge, collect, &c) == GRPC_READER_TOO_LARGE, "the size limit holds");
    grpc_reader_reset(&reader);
    const uint8_t truncated[] = {0, 0, 0, 0, 9, 1, 2};
    grpc_reader_feed(&reader, truncated, sizeof truncated, collect, &c);
    CHECK(grpc_reader_partial(&reader), "a truncated message is noticed");
    grpc_reader_free(&reader);
}

static void test_wire_helpers(void) {
    char out[64];
    const char *encoded = "product%20sku-1%20not%20found%zz%";
    grpc_decode_message((const uint8_t *)encoded, strlen(encoded), out, sizeof out);
    CHECK(strcmp(out, "product sku-1 not found%zz%") == 0, "percent decoding: %s", out);
    CHECK(grpc_parse_status((const uint8_t *)"12", 2) == 12, "grpc-status 12");
    CHECK(grpc_parse_status((const uint8_t *)"x", 1) == -1, "malformed grpc-status");
    CHECK(strcmp(grpc_status_name(5), "NOT_FOUND") == 0 && grpc_status_name(17) == NULL, "status names");
    CHECK(grpc_content_type_ok((const uint8_t *)"application/grpc", 16), "application/grpc");
    CHECK(grpc_content_type_ok((const uint8_t *)"application/grpc+proto", 22), "application/grpc+proto");
    CHECK(!grpc_content_type_ok((const uint8_t *)"application/grpcx", 17), "application/grpcx");
    CHECK(!grpc_content_type_ok((const uint8_t *)"text/html", 9), "text/html");
    grpc_format_timeout(250000000ULL, out, sizeof out);
    CHECK(strcmp(out, "250000u") == 0, "250 ms as grpc-timeout: %s", out);
    grpc_format_timeout(3600ULL * 1000000000ULL, out, sizeof out);
    CHECK(strcmp(out, "3600000m") == 0, "1 h as grpc-timeout: %s", out);
}

int main(void) {
    test_buckets_tile_the_range();
    test_percentiles_within_one_percent();
    test_small_and_merged();
    test_reader_any_split();
    test_wire_helpers();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
