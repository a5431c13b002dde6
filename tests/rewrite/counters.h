/* The library's counters of routed calls, read through
 * lkl_hijack_tier_stats when the library is loaded (all zero otherwise):
 * [through rewritten sites, through the trap, of which at known sites,
 *  sites rewritten, sites refused]. */
#ifndef REWRITE_COUNTERS_H
#define REWRITE_COUNTERS_H

#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

typedef size_t (*stats_fn)(unsigned long long *, size_t);
static stats_fn stats;

/* Looks the library's counters up; call first thing in main. */
static void counters_find(void)
{
	stats = (stats_fn)dlsym(RTLD_DEFAULT, "lkl_hijack_tier_stats");
}

static void counters(unsigned long long c[5])
{
	memset(c, 0, 5 * sizeof(c[0]));
	if (stats)
		stats(c, 5);
}

#endif
