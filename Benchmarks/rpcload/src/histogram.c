#include "histogram.h"

#include <string.h>

static const uint64_t top_value = (2ULL << HISTOGRAM_TOP_MAGNITUDE) - 1;

static size_t bucket_index(uint64_t value) {
    if (value < HISTOGRAM_LINEAR_LIMIT) return (size_t)value;
    if (value > top_value) value = top_value;
    unsigned magnitude = 63U - (unsigned)__builtin_clzll(value); /* >= 8 */
    unsigned shift = magnitude - HISTOGRAM_SUB_BITS;
    uint64_t sub = (value >> shift) - (1ULL << HISTOGRAM_SUB_BITS); /* 0..127 */
    return HISTOGRAM_LINEAR_LIMIT + (size_t)(magnitude - HISTOGRAM_SUB_BITS - 1) * (1U << HISTOGRAM_SUB_BITS) + (size_t)sub;
}

void histogram_bucket_range(size_t index, uint64_t *low, uint64_t *high) {
    if (index < HISTOGRAM_LINEAR_LIMIT) {
        *low = *high = index;
        return;
    }
    size_t j = index - HISTOGRAM_LINEAR_LIMIT;
    unsigned magnitude = (unsigned)(j >> HISTOGRAM_SUB_BITS) + HISTOGRAM_SUB_BITS + 1;
    uint64_t sub = (1ULL << HISTOGRAM_SUB_BITS) + (j & ((1U << HISTOGRAM_SUB_BITS) - 1));
    unsigned shift = magnitude - HISTOGRAM_SUB_BITS;
    *low = sub << shift;
    *high = ((sub + 1) << shift) - 1;
}

void histogram_init(struct histogram *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void histogram_record(struct histogram *h, uint64_t value_ns) {
    h->counts[bucket_index(value_ns)]++;
    h->total++;
    h->sum += (double)value_ns;
    if (value_ns < h->min) h->min = value_ns;
    if (value_ns > h->max) h->max = value_ns;
}

void histogram_merge(struct histogram *into, const struct histogram *from) {
    if (from->total == 0) return;
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) into->counts[i] += from->counts[i];
    into->total += from->total;
    into->sum += from->sum;
    if (from->min < into->min) into->min = from->min;
    if (from->max > into->max) into->max = from->max;
}

uint64_t histogram_percentile(const struct histogram *h, double percentile) {
    if (h->total == 0) return 0;
    if (percentile >= 100.0) return h->max;
    /* The rank of the value asked for, 1-based, rounded up: p50 of 3 values
     * is the 2nd. */
    double exact = percentile / 100.0 * (double)h->total;
    uint64_t rank = (uint64_t)exact;
    if ((double)rank < exact || rank == 0) rank++;
    uint64_t seen = 0;
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t low, high;
            histogram_bucket_range(i, &low, &high);
            if (high > h->max) high = h->max;
            if (high < h->min) high = h->min;
            return high;
        }
    }
    return h->max;
}

double histogram_mean(const struct histogram *h) {
    return h->total ? h->sum / (double)h->total : 0.0;
}
