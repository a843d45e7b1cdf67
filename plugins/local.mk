# plugins rules (owned by the plugins area)

# The plugin ABI header, installed as <crund/plugin.h>.
crundincludedir = $(includedir)/crund
crundinclude_HEADERS = include/crund/plugin.h

# Plugins are modules: no lib prefix, no version suffix, a plain demo.so
# in $(plugindir).  They link libcrunner (shared), so they and the daemon
# use one runtime instance.
PLUGIN_MODULE_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared

plugin_LTLIBRARIES += plugins/demo.la
plugins_demo_la_SOURCES = plugins/demo/demo.c
plugins_demo_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
plugins_demo_la_LDFLAGS = $(PLUGIN_MODULE_LDFLAGS)
plugins_demo_la_LIBADD = lib/libcrunner.la $(JANSSON_LIBS)

# The http plugin: job `request` on libcurl through the daemon's shared
# multi (crund_curl_perform); it links libcurl for the easy handles.
plugin_LTLIBRARIES += plugins/http.la
plugins_http_la_SOURCES = plugins/http/http.c common/jsondepth.h
plugins_http_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS)
plugins_http_la_LDFLAGS = $(PLUGIN_MODULE_LDFLAGS)
plugins_http_la_LIBADD = lib/libcrunner.la $(JANSSON_LIBS) $(CURL_LIBS) -lm

# The plugin author's guide and the out-of-tree example (its Makefile uses
# pkg-config; the test suite builds hello.c in tree and loads it).
EXTRA_DIST += docs/plugin-guide.md examples/plugin-hello/hello.c \
	examples/plugin-hello/Makefile

# exec: runs commands (CRUND_PLUGIN_RUNS_COMMANDS: loaded only with
# --allow-command-plugins, and only programs matching exec-allow run).
plugin_LTLIBRARIES += plugins/exec.la
plugins_exec_la_SOURCES = plugins/exec/exec.c
plugins_exec_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
plugins_exec_la_LDFLAGS = $(PLUGIN_MODULE_LDFLAGS)
plugins_exec_la_LIBADD = lib/libcrunner.la $(JANSSON_LIBS)
