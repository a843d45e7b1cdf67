/*
 * hello.c — the first example of the README: run a coroutine with cr_run
 * (asyncio.run), sleep, spawn a few tasks, gather them, print "hello".
 *
 *     cc hello.c $(pkg-config --cflags --libs crunner)
 */
#include <stdint.h>
#include <stdio.h>

#include <crunner.h>

/* A task: sleep a little, return its number doubled as its value. */
static int worker(void *arg, void **ret_value)
{
	intptr_t n = (intptr_t)arg;
	int rc = cr_sleep(0.01 * (double)n);

	if (rc < 0)
		return rc; /* cancelled: pass it on */
	*ret_value = (void *)(n * 2);
	return 0;
}

static int hello(void *arg, void **ret_value)
{
	cr_task *tasks[3];
	size_t n = 0;
	int rc;

	(void)arg;
	(void)ret_value;
	rc = cr_sleep(0.1); /* await asyncio.sleep(0.1) */
	if (rc < 0)
		return rc;
	for (intptr_t i = 1; i <= 3; i++) {
		rc = cr_spawn(worker, (void *)i, NULL, &tasks[n]);
		if (rc < 0)
			goto out;
		n++;
	}
	rc = cr_gather(tasks, n, NULL); /* await asyncio.gather(*tasks) */
	if (rc == 0) {
		long sum = 0;

		for (size_t i = 0; i < n; i++) {
			void *v = NULL;

			cr_task_result(tasks[i], &v);
			sum += (long)(intptr_t)v;
		}
		printf("hello (the workers returned %ld)\n", sum);
	}
out:
	for (size_t i = 0; i < n; i++)
		cr_task_unref(tasks[i]);
	return rc;
}

int main(void)
{
	int rc = cr_run(hello, NULL, NULL, NULL);

	if (rc < 0) {
		fprintf(stderr, "hello: %s (%s)\n", cr_strerror(rc), cr_last_error());
		return 1;
	}
	return 0;
}
