/*
 * ui.h — the dashboard's static files (ui/), compiled into crund by
 * build-aux/embed-files (ui/files.c, generated at build time) and served
 * under /ui/ by ui.c.
 */
#ifndef CRUND_UI_H
#define CRUND_UI_H

#include <stddef.h>

typedef struct crd_ui_file {
	const char *name; /* "index.html": one path segment under /ui/ */
	const unsigned char *data;
	size_t len;
} crd_ui_file;

/* The files, ended by an entry with name NULL. */
extern const crd_ui_file crd_ui_files[];

#endif
