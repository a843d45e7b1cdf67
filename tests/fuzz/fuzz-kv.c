/*
 * fuzz-kv.c — what a user types after `crunctl submit PLUGIN JOB`:
 * key=value and key:=JSON arguments typed by the job's declared argument
 * type (client/args.c: crunctl_split_kv, crunctl_typed_value,
 * crunctl_raw_value), durations (--wait 5m) and counts (--limit), and
 * the RFC 3339 times crunctl reads from the daemon's answers
 * (client/format.c).
 *
 * Cross-check with the daemon: a value crunctl typed for a declared type
 * must pass the daemon's own check for that type (daemon/args.c,
 * crd_arg_check), or the user gets a 400 for a value crunctl accepted.
 *
 * Input: "TYPE\nARG": TYPE is the declared type as GET /v1/plugins gives
 * it ("string", "integer", ... or anything: unknown types are strings),
 * ARG is the command-line word.
 */
#include "config.h"

#include <errno.h>
#include <math.h>

#include "common/rfc3339.h"
#include "crunctl.h"
#include "fuzz.h"
#include "plugins/plugins.h"

static crund_arg_type daemon_type(const char *type)
{
	static const struct {
		const char *name;
		crund_arg_type t;
	} map[] = {
		{"string", CRUND_ARG_STRING}, {"integer", CRUND_ARG_INTEGER},
		{"number", CRUND_ARG_NUMBER}, {"boolean", CRUND_ARG_BOOLEAN},
		{"any", CRUND_ARG_ANY},       {"object", CRUND_ARG_OBJECT},
		{"array", CRUND_ARG_ARRAY},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(type, map[i].name))
			return map[i].t;
	return CRUND_ARG_STRING; /* crunctl sends unknown types as strings */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	char *f[2];
	if (fuzz_split_lines(text, f, 2) < 2) {
		free(text);
		return 0;
	}
	const char *type = f[0], *arg = f[1];
	char err[512];

	char *key = NULL;
	const char *value = NULL;
	bool raw = false;
	int rc = crunctl_split_kv(arg, &key, &value, &raw);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0) {
		FUZZ_CHECK(*key && !strchr(key, '='));
		FUZZ_CHECK(value > arg && value <= arg + strlen(arg) && value[-1] == '=');
		json_t *v = NULL;
		memset(err, 0, sizeof(err));
		if (raw)
			rc = crunctl_raw_value(key, value, &v, err, sizeof(err));
		else
			rc = crunctl_typed_value(key, type, value, &v, err, sizeof(err));
		FUZZ_CHECK(rc == 0 || rc == -EINVAL);
		if (rc < 0) {
			FUZZ_CHECK(fuzz_err_ok(err, sizeof(err)));
		} else {
			FUZZ_CHECK(v != NULL);
			/* Typed values go through the daemon's check for their type. */
			if (!raw) {
				crund_arg_spec spec = {.name = key, .type = daemon_type(type)};
				json_t *checked = NULL;
				char derr[300];
				int drc = crd_arg_check(&spec, v, &checked, derr, sizeof(derr));
				if (drc < 0)
					fprintf(stderr,
						"crunctl typed '%s' as %s, the daemon says: %s\n",
						value, type, derr);
				FUZZ_CHECK(drc == 0);
				json_decref(checked);
			}
			if (!raw && daemon_type(type) == CRUND_ARG_STRING)
				FUZZ_CHECK(!strcmp(json_string_value(v), value));
			/* It is sent as JSON text: it must serialise. */
			char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			FUZZ_CHECK(dump != NULL);
			free(dump);
			json_decref(v);
		}
		free(key);
	}

	double secs = -1;
	rc = crunctl_parse_duration(arg, &secs);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0)
		FUZZ_CHECK(isfinite(secs) && secs >= 0);

	long count = -1;
	rc = crunctl_parse_count(arg, &count);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0)
		FUZZ_CHECK(count > 0);

	double epoch = NAN;
	rc = crd_rfc3339_parse(arg, &epoch);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0) {
		FUZZ_CHECK(isfinite(epoch));
		char buf[64], rel[64];
		crunctl_format_local_time(epoch, buf, sizeof(buf));
		crunctl_format_relative(epoch, 1.7e9, rel, sizeof(rel));
		FUZZ_CHECK(memchr(buf, '\0', sizeof(buf)) && memchr(rel, '\0', sizeof(rel)));
	}
	if (rc == 0 || secs >= 0) {
		char dur[32];
		crunctl_format_duration(rc == 0 ? epoch : secs, dur, sizeof(dur));
		FUZZ_CHECK(memchr(dur, '\0', sizeof(dur)));
	}
	free(text);
	return 0;
}
