/* String-keyed hash map with linear probing (see sim_map.h). Entries are never
 * removed one by one, only all at once, so no tombstones are needed.
 * Single-threaded. */
#include "sim_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sim_map_slot {
	char *key;
	void *value;
	uint64_t hash;
};

struct sim_map {
	struct sim_map_slot *slots;
	size_t cap; /* power of two */
	size_t count;
	void (*free_value)(void *);
};

static uint64_t sim_map_hash(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 0x100000001b3ULL;
	return h;
}

struct sim_map *sim_map_new(void (*free_value)(void *))
{
	struct sim_map *map = calloc(1, sizeof(*map));

	if (!map)
		return NULL;
	map->cap = 64;
	map->slots = calloc(map->cap, sizeof(*map->slots));
	if (!map->slots) {
		free(map);
		return NULL;
	}
	map->free_value = free_value;
	return map;
}

void sim_map_clear(struct sim_map *map)
{
	size_t i;

	for (i = 0; i < map->cap; i++) {
		struct sim_map_slot *s = &map->slots[i];

		if (!s->key)
			continue;
		if (map->free_value)
			map->free_value(s->value);
		free(s->key);
		s->key = NULL;
		s->value = NULL;
	}
	map->count = 0;
}

void sim_map_free(struct sim_map *map)
{
	if (!map)
		return;
	sim_map_clear(map);
	free(map->slots);
	free(map);
}

static struct sim_map_slot *sim_map_find(const struct sim_map *map, const char *key, uint64_t h)
{
	size_t i = (size_t)h & (map->cap - 1);

	for (;;) {
		struct sim_map_slot *s = &map->slots[i];

		if (!s->key || (s->hash == h && strcmp(s->key, key) == 0))
			return s;
		i = (i + 1) & (map->cap - 1);
	}
}

void *sim_map_get(const struct sim_map *map, const char *key)
{
	struct sim_map_slot *s = sim_map_find(map, key, sim_map_hash(key));

	return s->key ? s->value : NULL;
}

static int sim_map_grow(struct sim_map *map)
{
	struct sim_map_slot *old = map->slots;
	size_t old_cap = map->cap, i;

	map->slots = calloc(old_cap * 2, sizeof(*map->slots));
	if (!map->slots) {
		map->slots = old;
		return -1;
	}
	map->cap = old_cap * 2;
	for (i = 0; i < old_cap; i++)
		if (old[i].key)
			*sim_map_find(map, old[i].key, old[i].hash) = old[i];
	free(old);
	return 0;
}

int sim_map_put(struct sim_map *map, const char *key, void *value)
{
	uint64_t h = sim_map_hash(key);
	struct sim_map_slot *s;

	if ((map->count + 1) * 4 > map->cap * 3 && sim_map_grow(map) < 0)
		return -1;
	s = sim_map_find(map, key, h);
	if (s->key) {
		if (map->free_value && s->value != value)
			map->free_value(s->value);
		s->value = value;
		return 0;
	}
	s->key = strdup(key);
	if (!s->key)
		return -1;
	s->value = value;
	s->hash = h;
	map->count++;
	return 0;
}

size_t sim_map_count(const struct sim_map *map)
{
	return map->count;
}

void sim_map_each(const struct sim_map *map, void (*fn)(const char *key, void *value, void *arg),
		  void *arg)
{
	size_t i;

	for (i = 0; i < map->cap; i++)
		if (map->slots[i].key)
			fn(map->slots[i].key, map->slots[i].value, arg);
}
