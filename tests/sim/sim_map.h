/* A string-keyed hash map (open addressing) for the per-token script, the
 * provider-token cache and the issued OAuth tokens. Keys are copied; values
 * are owned by the map and released with the free_value function given at
 * creation. Single-threaded. */
#ifndef SIM_MAP_H
#define SIM_MAP_H

#include <stddef.h>

struct sim_map;

/* free_value may be NULL. Caller frees with sim_map_free(). */
struct sim_map *sim_map_new(void (*free_value)(void *));
void sim_map_free(struct sim_map *map);

void *sim_map_get(const struct sim_map *map, const char *key);
/* Inserts or replaces (the old value is released). Takes ownership of value
 * on success only; returns 0, or -1 when out of memory. */
int sim_map_put(struct sim_map *map, const char *key, void *value);
size_t sim_map_count(const struct sim_map *map);
/* Calls fn for every entry, in no particular order; fn must not change the map. */
void sim_map_each(const struct sim_map *map, void (*fn)(const char *key, void *value, void *arg),
		  void *arg);
/* Removes every entry. */
void sim_map_clear(struct sim_map *map);

#endif
