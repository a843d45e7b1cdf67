/*
 * fuzz-elf.c — the plugin pre-check on a .so file's bytes, before any
 * code of it runs: crd_plugin_check_image() (daemon/plugins/elf.c) reads the
 * ELF header, program and section headers, .dynsym or the dynamic
 * segment with its DT_HASH / DT_GNU_HASH tables, and the descriptor head
 * the exported symbol points to.  A plugin directory is outside input: a
 * truncated, corrupt or hostile file must be refused with a reason, never
 * read out of bounds.
 *
 * Input: the file's bytes.
 */
#include "config.h"

#include <errno.h>

#include "fuzz.h"
#include "plugins/plugins.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];
	memset(why, 0, sizeof(why));
	int rc = crd_plugin_check_image(data, size, why, sizeof(why));
	FUZZ_CHECK(rc == 0 || rc == -ENOEXEC || rc == -EPROTO);
	if (rc < 0)
		FUZZ_CHECK(fuzz_err_ok(why, sizeof(why)));
	/* A short reason buffer truncates the reason, nothing else. */
	char tiny[8];
	memset(tiny, 0x5a, sizeof(tiny));
	FUZZ_CHECK(crd_plugin_check_image(data, size, tiny, sizeof(tiny)) == rc);
	if (rc < 0)
		FUZZ_CHECK(memchr(tiny, '\0', sizeof(tiny)));
	return 0;
}
