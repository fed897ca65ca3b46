#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int stats_init(struct stats *stats, size_t entry_count) {
    memset(stats, 0, sizeof *stats);
    stats->entries = calloc(entry_count, sizeof *stats->entries);
    if (!stats->entries) return -1;
    stats->entry_count = entry_count;
    for (size_t i = 0; i < entry_count; i++) histogram_init(&stats->entries[i].latency);
    return 0;
}

void stats_free(struct stats *stats) {
    free(stats->entries);
    stats->entries = NULL;
}

const char *error_kind_name(enum error_kind kind) {
    switch (kind) {
    case ERROR_GRPC_STATUS: return "grpc-status";
    case ERROR_HTTP_STATUS: return "http-status";
    case ERROR_RST_STREAM: return "rst-stream";
    case ERROR_CONNECTION: return "connection";
    case ERROR_DECODE: return "decode-error";
    case ERROR_PROTOCOL: return "protocol";
    case ERROR_UNFINISHED: return "unfinished";
    }
    return "?";
}

void stats_error(struct stats *stats, long entry, bool recorded, enum error_kind kind, int code,
                 const char *label, const char *example) {
    stats->error_total++;
    if (entry >= 0 && recorded) stats->entries[entry].errors++;

    /* Rows are few (a run that fails usually fails one way), so a linear
     * search is fine; past the table's size everything lands in the last
     * row rather than being lost. */
    struct error_row *row = NULL;
    for (size_t i = 0; i < stats->error_rows; i++) {
        if (stats->errors[i].kind == kind && stats->errors[i].code == code &&
            strcmp(stats->errors[i].label, label) == 0) {
            row = &stats->errors[i];
            break;
        }
    }
    if (!row && stats->error_rows < STATS_MAX_ERROR_ROWS) {
        row = &stats->errors[stats->error_rows++];
        memset(row, 0, sizeof *row);
        row->kind = kind;
        row->code = code;
        snprintf(row->label, sizeof row->label, "%s", label);
        if (example) snprintf(row->example, sizeof row->example, "%s", example);
    }
    if (!row) row = &stats->errors[STATS_MAX_ERROR_ROWS - 1];
    row->count++;
    if (!recorded) row->during_warmup++;
}
