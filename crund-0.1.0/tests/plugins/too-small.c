/* Fixture: a descriptor whose size field is smaller than its ABI minor's
 * descriptor.  Refused with "descriptor too small". */
#include <crund/plugin.h>

__attribute__((visibility("default"))) extern const crund_plugin crund_plugin_v1;
const crund_plugin crund_plugin_v1 = {
	.magic = CRUND_PLUGIN_MAGIC,
	.abi_major = CRUND_PLUGIN_ABI_MAJOR,
	.abi_minor = CRUND_PLUGIN_ABI_MINOR,
	.size = 16,
	.name = "too_small",
};
