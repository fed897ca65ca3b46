#include "report.h"

#include <string.h>


static const double percentiles[] = {50, 90, 99, 99.9};
static const char *const percentile_names[] = {"p50", "p90", "p99", "p99.9"};
#define PERCENTILES (sizeof percentiles / sizeof percentiles[0])

/* 734us, 1.25ms, 12.3ms, 1.02s: three significant digits are all a 1%
 * histogram can back. */
static const char *format_latency(uint64_t ns, char *out, size_t size) {
    double us = (double)ns / 1e3;
    if (ns == 0) snprintf(out, size, "-");
    else if (us < 1000) snprintf(out, size, "%.0fus", us);
    else if (us < 10000) snprintf(out, size, "%.2fms", us / 1e3);
    else if (us < 1000000) snprintf(out, size, "%.1fms", us / 1e3);
    else snprintf(out, size, "%.2fs", us / 1e6);
    return out;
}

static bool any_streaming(const struct mix *mix) {
    for (size_t i = 0; i < mix->count; i++)
        if (mix->entries[i].method.server_streaming) return true;
    return false;
}

static void total_of(const struct stats *stats, struct entry_stats *total) {
    memset(total, 0, sizeof *total);
    histogram_init(&total->latency);
    for (size_t i = 0; i < stats->entry_count; i++) {
        const struct entry_stats *entry = &stats->entries[i];
        histogram_merge(&total->latency, &entry->latency);
        total->started += entry->started;
        total->ok += entry->ok;
        total->errors += entry->errors;
        total->messages += entry->messages;
    }
}

/* `seconds` is the window for call rates; messages are counted only inside
 * the scheduled window, so their rate is over `window`. */
static void text_row(FILE *out, int width, const char *label, const struct entry_stats *entry, double seconds,
                     double window, bool streaming) {
    char buffer[32];
    fprintf(out, "%-*s %10.1f %9llu %7llu", width, label, seconds > 0 ? (double)entry->ok / seconds : 0.0,
            (unsigned long long)entry->ok, (unsigned long long)entry->errors);
    for (size_t p = 0; p < PERCENTILES; p++)
        fprintf(out, " %8s", format_latency(histogram_percentile(&entry->latency, percentiles[p]), buffer, sizeof buffer));
    fprintf(out, " %8s", format_latency(entry->latency.max, buffer, sizeof buffer));
    fprintf(out, " %8s", format_latency((uint64_t)histogram_mean(&entry->latency), buffer, sizeof buffer));
    if (streaming) fprintf(out, " %10.1f", window > 0 ? (double)entry->messages / window : 0.0);
    fputc('\n', out);
}

void report_text(FILE *out, const struct report *report) {
    const struct options *options = report->options;
    const struct stats *stats = report->stats;
    const struct mix *mix = report->mix;
    bool streaming = any_streaming(mix);

    fprintf(out, "rpcload %s:%s  ", options->host, options->port);
    if (options->rate > 0)
        fprintf(out, "open loop %.0f/s over %u connection%s (up to %u streams each)", options->rate,
                options->connections, options->connections == 1 ? "" : "s", options->streams);
    else
        fprintf(out, "closed loop %ux%u (connections x streams)", options->connections, options->streams);
    fprintf(out, "  %.2f s measured", report->scheduled_s);
    if (options->warmup > 0) fprintf(out, " after %.2f s warm-up", options->warmup);
    /* When calls outlast the window (an overloaded server in open loop),
     * rates are over the time until the last of them finished. */
    if (report->measured_s > report->scheduled_s * 1.01)
        fprintf(out, "; rates over %.2f s, until the last call finished", report->measured_s);
    fprintf(out, "\n\n");

    int width = 5;
    for (size_t i = 0; i < mix->count; i++) {
        int len = (int)strlen(mix->entries[i].label);
        if (len > width) width = len;
    }
    fprintf(out, "%-*s %10s %9s %7s", width, "method", "ok/s", "ok", "errors");
    for (size_t p = 0; p < PERCENTILES; p++) fprintf(out, " %8s", percentile_names[p]);
    fprintf(out, " %8s %8s", "max", "mean");
    if (streaming) fprintf(out, " %10s", "msgs/s");
    fputc('\n', out);

    struct entry_stats total;
    total_of(stats, &total);
    if (mix->count > 1) {
        for (size_t i = 0; i < mix->count; i++)
            text_row(out, width, mix->entries[i].label, &stats->entries[i], report->measured_s, report->scheduled_s,
                     streaming);
    }
    text_row(out, width, mix->count > 1 ? "total" : mix->entries[0].label, &total, report->measured_s,
             report->scheduled_s, streaming);
    fprintf(out, "\nlatency of successful calls, from %s; ok/s = successful calls per second\n",
            options->rate > 0 ? "each call's scheduled start (coordinated omission corrected)" : "each call's start");

    if (options->rate > 0) {
        fprintf(out, "open loop: target %.1f/s, sent %.1f/s", options->rate,
                report->measured_s > 0 ? (double)total.started / report->measured_s : 0.0);
        fprintf(out, ", most calls waiting for a free stream %llu", (unsigned long long)stats->max_backlog);
        if (stats->unsent) fprintf(out, ", %llu due but never sent (server too slow)", (unsigned long long)stats->unsent);
        fputc('\n', out);
    }

    if (stats->error_total == 0 && stats->connection_failures == 0) {
        fprintf(out, "errors: none\n");
        return;
    }
    fprintf(out, "\nerrors: %llu", (unsigned long long)stats->error_total);
    uint64_t during_warmup = 0;
    for (size_t i = 0; i < stats->error_rows; i++) during_warmup += stats->errors[i].during_warmup;
    if (during_warmup) fprintf(out, " (%llu during warm-up)", (unsigned long long)during_warmup);
    if (stats->connection_failures)
        fprintf(out, "; connection failures (lost or refused): %llu", (unsigned long long)stats->connection_failures);
    fputc('\n', out);
    if (stats->error_rows) fprintf(out, "  %-12s %5s  %-20s %9s  %s\n", "kind", "code", "error", "count", "first message");
    for (size_t i = 0; i < stats->error_rows; i++) {
        const struct error_row *row = &stats->errors[i];
        fprintf(out, "  %-12s %5d  %-20s %9llu  %s\n", error_kind_name(row->kind), row->code, row->label,
                (unsigned long long)row->count, row->example);
    }
}

static void json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(out, "\\%c", *c);
        else if (*c < 0x20) fprintf(out, "\\u%04x", *c);
        else fputc(*c, out);
    }
    fputc('"', out);
}

static void json_latency(FILE *out, const struct histogram *h) {
    fprintf(out, "{\"count\": %llu", (unsigned long long)h->total);
    fprintf(out, ", \"min\": %.3f", h->total ? (double)h->min / 1e3 : 0.0);
    static const char *const keys[] = {"p50", "p90", "p99", "p999"};
    for (size_t p = 0; p < PERCENTILES; p++)
        fprintf(out, ", \"%s\": %.3f", keys[p], (double)histogram_percentile(h, percentiles[p]) / 1e3);
    fprintf(out, ", \"max\": %.3f, \"mean\": %.3f}", (double)h->max / 1e3, histogram_mean(h) / 1e3);
}

static void json_entry(FILE *out, const struct entry_stats *entry, double seconds, double window) {
    uint64_t messages = entry->messages;
    fprintf(out, "\"calls_started\": %llu, \"ok\": %llu, \"errors\": %llu, \"ok_per_s\": %.3f, ",
            (unsigned long long)entry->started, (unsigned long long)entry->ok, (unsigned long long)entry->errors,
            seconds > 0 ? (double)entry->ok / seconds : 0.0);
    fprintf(out, "\"messages\": %llu, \"messages_per_s\": %.3f, \"latency_us\": ", (unsigned long long)messages,
            window > 0 ? (double)messages / window : 0.0);
    json_latency(out, &entry->latency);
}

void report_json(FILE *out, const struct report *report) {
    const struct options *options = report->options;
    const struct stats *stats = report->stats;
    const struct mix *mix = report->mix;
    struct entry_stats total;
    total_of(stats, &total);

    fprintf(out, "{\n  \"target\": ");
    json_string(out, options->host);
    fprintf(out, ", \"port\": ");
    json_string(out, options->port);
    fprintf(out, ",\n  \"mode\": \"%s\", \"connections\": %u, \"streams_per_connection\": %u, \"rate\": %.3f,\n",
            options->rate > 0 ? "open" : "closed", options->connections, options->streams, options->rate);
    fprintf(out, "  \"duration_s\": %.3f, \"warmup_s\": %.3f, \"measured_s\": %.6f,\n", report->scheduled_s,
            options->warmup, report->measured_s);
    fprintf(out, "  \"total\": {");
    json_entry(out, &total, report->measured_s, report->scheduled_s);
    fprintf(out, "},\n");
    if (options->rate > 0)
        fprintf(out, "  \"open_loop\": {\"sent_per_s\": %.3f, \"max_backlog\": %llu, \"unsent\": %llu},\n",
                report->measured_s > 0 ? (double)total.started / report->measured_s : 0.0,
                (unsigned long long)stats->max_backlog, (unsigned long long)stats->unsent);
    fprintf(out, "  \"methods\": [\n");
    for (size_t i = 0; i < mix->count; i++) {
        const struct mix_entry *entry = &mix->entries[i];
        fprintf(out, "    {\"label\": ");
        json_string(out, entry->label);
        fprintf(out, ", \"path\": ");
        json_string(out, entry->path);
        fprintf(out, ", \"weight\": %llu, \"server_streaming\": %s, ", (unsigned long long)entry->weight,
                entry->method.server_streaming ? "true" : "false");
        json_entry(out, &stats->entries[i], report->measured_s, report->scheduled_s);
        fprintf(out, "}%s\n", i + 1 < mix->count ? "," : "");
    }
    fprintf(out, "  ],\n  \"errors\": {\"total\": %llu, \"connection_failures\": %llu, \"by_kind\": [\n",
            (unsigned long long)stats->error_total, (unsigned long long)stats->connection_failures);
    for (size_t i = 0; i < stats->error_rows; i++) {
        const struct error_row *row = &stats->errors[i];
        fprintf(out, "    {\"kind\": \"%s\", \"code\": %d, \"name\": ", error_kind_name(row->kind), row->code);
        json_string(out, row->label);
        fprintf(out, ", \"count\": %llu, \"during_warmup\": %llu, \"example\": ", (unsigned long long)row->count,
                (unsigned long long)row->during_warmup);
        json_string(out, row->example);
        fprintf(out, "}%s\n", i + 1 < stats->error_rows ? "," : "");
    }
    /* Non-empty buckets of the total histogram as [upper bound in ns,
     * count], so runs can be merged or re-cut later. */
    fprintf(out, "  ]},\n  \"histogram_ns\": [");
    bool first = true;
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
        if (!total.latency.counts[i]) continue;
        uint64_t low, high;
        histogram_bucket_range(i, &low, &high);
        fprintf(out, "%s[%llu, %llu]", first ? "" : ", ", (unsigned long long)high,
                (unsigned long long)total.latency.counts[i]);
        first = false;
    }
    fprintf(out, "]\n}\n");
}
