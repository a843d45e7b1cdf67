/*
 * thread.h — starting a helper thread of the daemon (the stall watchdog,
 * the store's writer): SIGTERM and SIGINT (and SIGHUP, SIGUSR1, SIGUSR2,
 * which crund ignores) belong to the loop thread (docs/ARCHITECTURE.md
 * §2.4), so a helper is created with them blocked (it inherits the mask)
 * and never takes them; faults stay its own.
 */
#ifndef CRUND_THREAD_H
#define CRUND_THREAD_H

#include <pthread.h>
#include <signal.h>

/* pthread_create's result: 0 or a positive errno. */
static inline int crd_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t stop, old;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	sigaddset(&stop, SIGUSR1);
	sigaddset(&stop, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	int rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

#endif
