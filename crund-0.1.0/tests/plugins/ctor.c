/* Fixture: a plugin with a constructor that writes a marker file (named
 * by $CRUND_TEST_MARKER) and an ABI the daemon refuses.  The ELF
 * pre-check must refuse it without dlopen(): the marker must not appear.
 * The test also dlopen()s it directly to show the marker does work. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <crund/plugin.h>

__attribute__((constructor)) static void write_marker(void)
{
	const char *path = getenv("CRUND_TEST_MARKER");
	if (!path)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

static int run(crund_job *job) { return 0; }
static const crund_job_spec jobs[] = {{.name = "x", .run = run}};

__attribute__((visibility("default"))) extern const crund_plugin crund_plugin_v1;
const crund_plugin crund_plugin_v1 = {
	.magic = CRUND_PLUGIN_MAGIC,
	.abi_major = CRUND_PLUGIN_ABI_MAJOR + 1,
	.abi_minor = 0,
	.size = sizeof(crund_plugin),
	.name = "ctor",
	.jobs = jobs,
	.n_jobs = 1,
};
