# daemon/jobs: the job records and their state machine, the queue,
# retention, subscribers, submissions, and running a job as a task.
daemon_crund_SOURCES += \
	daemon/jobs/jobs.h daemon/jobs/jobs.c daemon/jobs/events.c \
	daemon/jobs/submit.h daemon/jobs/submit.c \
	common/rfc3339.h common/rfc3339.c common/logline.h \
	daemon/jobs/run.c
