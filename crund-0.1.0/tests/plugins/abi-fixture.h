/* The job table both ABI layout fixtures (abi-1-0.c: the ABI 1.0 layout;
 * abi-wide.c: a layout with fields appended) declare, each in its own
 * struct layout, and that tests/test-plugins.c expects to read back.  As
 * X-macros, so the three agree by construction and only the layout
 * differs.
 *
 * ARG(name, type, required, default_json, description, has_range, min, max)
 * JOB(name, description, run function, args list macro or NONE) */
#ifndef ABI_FIXTURE_H
#define ABI_FIXTURE_H

#define ABI_ALPHA_ARGS(ARG)                                                        \
	ARG("count", CRUND_ARG_INTEGER, false, "5", "how many times", true, 1, 10) \
	ARG("label", CRUND_ARG_STRING, true, NULL, "what to call it", false, 0, 0) \
	ARG("ratio", CRUND_ARG_NUMBER, false, "0.25", "a fraction", true, 0, 1)

#define ABI_BETA_ARGS(ARG)                                                     \
	ARG("flag", CRUND_ARG_BOOLEAN, false, "true", "a switch", false, 0, 0) \
	ARG("payload", CRUND_ARG_ANY, true, NULL, "any JSON value", false, 0, 0)

#define ABI_GAMMA_ARGS(ARG)                                                                   \
	ARG("items", CRUND_ARG_ARRAY, false, "[1, 2]", "a list", false, 0, 0)                 \
	ARG("options", CRUND_ARG_OBJECT, false, "{\"a\": 1}", "an object", false, 0, 0)       \
	ARG("offset", CRUND_ARG_INTEGER, false, NULL, "bounded, no default", true, -100, 100) \
	ARG("note", CRUND_ARG_STRING, false, "\"none\"", "a note", false, 0, 0)

/* Every job's run function sets its own name as the result. */
#define ABI_JOBS(JOB)                                                \
	JOB("alpha", "the first job", abi_run_alpha, ABI_ALPHA_ARGS) \
	JOB("beta", "the second job", abi_run_beta, ABI_BETA_ARGS)   \
	JOB("gamma", "the third job", abi_run_gamma, ABI_GAMMA_ARGS) \
	JOB("delta", "a job without arguments", abi_run_delta, ABI_NO_ARGS)

#define ABI_NO_ARGS(ARG)
#define ABI_N_JOBS 4

#endif
