/* The results: a table for people on stdout, JSON for scripts. Both show,
 * per mix entry and in total, successful calls per second, latency
 * percentiles of the successful calls (from their intended start), streamed
 * messages per second, and every error by kind and code. */
#ifndef RPCLOAD_REPORT_H
#define RPCLOAD_REPORT_H

#include <stdio.h>

#include "mix.h"
#include "options.h"
#include "stats.h"

struct report {
    const struct options *options;
    const struct mix *mix;
    const struct stats *stats;
    double measured_s;  /* the measured window: rates are per this */
    double scheduled_s; /* the window as configured (differs when stopped early) */
};

void report_text(FILE *out, const struct report *report);
void report_json(FILE *out, const struct report *report);

#endif
