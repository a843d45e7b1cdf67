/*
 * curl.h — libcurl's multi interface on the runner's loop: one shared
 * CURLM for the daemon, its sockets watched by the loop's libevent base
 * and its timer a loop timer, so a plugin's transfer awaits instead of
 * blocking (the host service crund_curl_perform).  Owned by
 * daemon/plugins/curl.c.
 *
 * Lifecycle: crd_curl_global_init() once in main before any thread
 * exists; crd_curl_open() with the daemon's loop; crd_curl_perform() from
 * job tasks; crd_curl_close() before the loop closes;
 * crd_curl_global_cleanup() at exit.
 */
#ifndef CRUND_CURL_H
#define CRUND_CURL_H

#include <stdbool.h>
#include <stddef.h>

#include "crunner.h"

/* libcurl's global initialisation (curl_global_init: not thread-safe, so
 * call it from main before threads start).  Returns 0 or -EIO. */
int crd_curl_global_init(void);
void crd_curl_global_cleanup(void);

/* One line describing the libcurl in use for the start-up log, e.g.
 * "libcurl 7.88.1 (OpenSSL/3.0.11), asynchronous DNS" (written into buf,
 * truncated to len).  Returns whether name resolution is asynchronous
 * (the AsynchDNS feature: the threaded resolver); without it every lookup
 * of a host name blocks the loop. */
bool crd_curl_describe(char *buf, size_t len);

/* Create the shared multi handle on `loop` (its event base is made if the
 * loop has none yet).  Call on the loop's thread, while the loop runs or
 * before.  Errors: -EALREADY (open), -EIO (no event base), -ENOMEM. */
int crd_curl_open(cr_loop *loop);

/* AWAITS: run the easy handle (CURL *) to its end through the shared
 * multi.  Returns 0 with the transfer's CURLcode in *ret_code; -ECANCELED
 * when the calling task was cancelled while the transfer ran (the handle
 * is removed from the multi; the caller still owns and frees it), or
 * when crd_curl_close() ended it; -ENOMEM; -EINVAL (NULL handle, or one
 * already in a multi); -EPERM (not in a task on the open loop).  The
 * handle's CURLOPT_PRIVATE is used while the transfer runs and restored
 * afterwards.  The handle stays the caller's throughout. */
int crd_curl_perform(void *easy, int *ret_code);

/* Transfers running now (for tests and metrics). */
size_t crd_curl_in_flight(void);

/* End every transfer still running (each perform returns -ECANCELED when
 * its task runs next), free the multi, its socket events and its timer.
 * Call on the loop's thread before the loop closes (the loop need not
 * run).  Later performs fail with -ECANCELED until crd_curl_open().
 * Idempotent. */
void crd_curl_close(void);

#endif
