/* A latency histogram in the HdrHistogram style: log-linear buckets, so
 * memory is fixed (30 KiB) and every recorded value is kept to within 1%
 * whatever the spread, with no sampling or sorting.
 *
 * Values are nanoseconds. Below 256 ns each value has its own bucket; above,
 * each power of two is split into 128 equal buckets, so a bucket is never
 * wider than 1/128 (0.79%) of its lower edge. The range covers 1 us to
 * about 68 s; larger values land in the top bucket (the exact maximum is
 * kept separately). */
#ifndef RPCLOAD_HISTOGRAM_H
#define RPCLOAD_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#define HISTOGRAM_SUB_BITS 7                        /* 128 buckets per power of two */
#define HISTOGRAM_LINEAR_LIMIT (2U << HISTOGRAM_SUB_BITS) /* 256: exact below */
#define HISTOGRAM_TOP_MAGNITUDE 35                   /* 2^35 ns = 34 s .. 68 s */
#define HISTOGRAM_BUCKETS \
    (HISTOGRAM_LINEAR_LIMIT + (HISTOGRAM_TOP_MAGNITUDE - HISTOGRAM_SUB_BITS) * (1U << HISTOGRAM_SUB_BITS))

struct histogram {
    uint64_t counts[HISTOGRAM_BUCKETS];
    uint64_t total;
    uint64_t min;
    uint64_t max;
    double sum; /* a double: 1e9 values of 60 s would overflow 64 bits */
};

void histogram_init(struct histogram *h);
void histogram_record(struct histogram *h, uint64_t value_ns);
void histogram_merge(struct histogram *into, const struct histogram *from);

/* The value at or below which `percentile` percent of the recorded values
 * lie: the upper edge of the bucket holding that rank (capped at the true
 * maximum), so it overstates by under 1% and never understates. 0 when
 * empty. */
uint64_t histogram_percentile(const struct histogram *h, double percentile);
double histogram_mean(const struct histogram *h);

/* The inclusive range of values bucket `index` holds. */
void histogram_bucket_range(size_t index, uint64_t *low, uint64_t *high);

#endif
