/*
 * common/jsondepth.h — how deep a JSON value nests.  jansson reads up to
 * 2048 levels, but writing such a value (json_dumps) recurses once per
 * level with a frame of a few hundred bytes: on a coroutine's stack (256
 * KiB by default) about 900 levels overflow it, and a task's stack
 * overflow ends the process.  So crund takes no deeper value from a
 * client (a submission's args), a plugin (a result) or a server (the http
 * job's JSON answer).
 */
#ifndef CRUND_COMMON_JSONDEPTH_H
#define CRUND_COMMON_JSONDEPTH_H

#include <stdbool.h>
#include <jansson.h>

/* The deepest nesting of arrays and objects taken (a scalar is 0 levels,
 * [] and {} 1, [[1]] 2). */
#define CRD_JSON_DEPTH_MAX 128

/* Whether v nests arrays and objects more than max levels deep.  Its own
 * recursion goes at most max + 1 levels down. */
static inline bool crd_json_too_deep(const json_t *v, int max)
{
	if (!json_is_array(v) && !json_is_object(v))
		return false;
	if (max <= 0)
		return true;
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			if (crd_json_too_deep(json_array_get(v, i), max - 1))
				return true;
		return false;
	}
	const char *k;
	json_t *e;
	json_object_foreach((json_t *)v, k, e)
	{
		if (crd_json_too_deep(e, max - 1))
			return true;
	}
	return false;
}

#endif
