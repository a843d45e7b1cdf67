/*
 * notify.h — the systemd service protocol by hand (no libsystemd):
 * sd_notify datagrams on $NOTIFY_SOCKET (path or abstract "@name"), the
 * watchdog interval from $WATCHDOG_USEC/$WATCHDOG_PID, and socket
 * activation ($LISTEN_FDS/$LISTEN_PID).
 */
#ifndef CRUND_NOTIFY_H
#define CRUND_NOTIFY_H

#include <stdint.h>

/* Send `state` ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...").
 * 0 when sent or when not under systemd (no NOTIFY_SOCKET); -errno else. */
int crd_notify(const char *state);

/* The watchdog interval in microseconds, 0 when systemd did not ask for
 * one (or asked another pid). */
uint64_t crd_watchdog_usec(void);

/* Socket activation: the number of inherited listening fds (starting at
 * 3), 0 when none were passed to this process.  Unsets the variables so
 * children do not inherit them, and marks the fds close-on-exec. */
int crd_listen_fds(void);

/* Close the notify socket (at exit). */
void crd_notify_close(void);

#endif
