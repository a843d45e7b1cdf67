/*
 * store/sqlite.c — the embedded store: one SQLite file in WAL mode.
 *
 * One crund per file: a lock file next to the database (PATH.lock) holds a
 * POSIX write lock for the life of the process and the holder's pid, so a
 * second crund names the one in its way.  SQLite's own locks are not used
 * for this: they are released by any close() of the file in the process
 * and do not tell who holds them.
 *
 * The connection is used by one thread at a time (the loop thread to open
 * and load, then only the writer thread, then the closer once the writer
 * is joined), so it is opened without SQLite's mutexes; and since the lock
 * file already admits one crund, SQLite's locking mode is EXCLUSIVE: no
 * shared-memory WAL index, no lock calls per transaction.
 *
 * Each commit is one IMMEDIATE transaction of upserts and deletes;
 * `synchronous` FULL makes it survive power loss (fsync of the WAL at
 * commit), NORMAL a crash of the process only.  Pages freed by retention
 * are reused, and auto_vacuum=INCREMENTAL gives some back now and then, so
 * the file stays flat under a steady load.
 *
 * The schema is versioned (table schema_version) and migrated forward in
 * order at open; a file written by a newer crund is refused.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/backend.h"

#define APP_ID        0x6372756e /* "crun": PRAGMA application_id of a crund store */
/* Deletions (retention forgets the oldest jobs) wait until this many are
 * due, then go in one commit: deleting a few rows in every commit wrote
 * the oldest leaf pages, the freelist and the header page each time (4 of
 * the ~10 WAL frames of a D1 commit).  A deletion lost in a crash only
 * brings a forgotten job back, and the next start's retention forgets it
 * again.  They go at once when the commit writes a job with an
 * idempotency key (a deleted job may free it), when someone waits for a
 * deletion (DELETE /v1/jobs/ID answers once it is durable), and at close. */
#define DEFER_DELETES 256

typedef struct sq {
	sqlite3 *db;
	char *path;
	int lock_fd;
	char prefix[16];
	/* The high-water mark of job numbers: max_seq (handed out, in this
	 * process), hw_rec (as in the meta table) and row_max (the highest
	 * number written to the jobs table).  At open the mark is the larger
	 * of the meta value and the highest row, so the meta row is written
	 * only when that would fall short: when a row above hw_rec is
	 * deleted, or a number was handed out that no row holds. */
	uint64_t max_seq, hw_rec, row_max;
	uint64_t *deferred; /* deletions not written yet (DEFER_DELETES) */
	size_t ndeferred;
	char describe[512];
	sqlite3_stmt *upsert, *del, *hiwater, *probe;
	unsigned commits_since_vacuum;
	/* the database and WAL files as opened (same_files) */
	dev_t db_dev, wal_dev;
	ino_t db_ino, wal_ino;
} sq;

/* Forward migrations: MIGRATIONS[i] takes schema version i to i + 1. */
static const char *const MIGRATIONS[] = {
	/* 0 → 1: the first schema */
	"CREATE TABLE schema_version (version INTEGER NOT NULL);"
	"INSERT INTO schema_version VALUES (0);"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE jobs ("
	" seq INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL UNIQUE,"
	" plugin TEXT NOT NULL,"
	" job TEXT NOT NULL,"
	" args TEXT NOT NULL,"
	" state INTEGER NOT NULL,"
	" attempt INTEGER NOT NULL DEFAULT 0,"
	" max_attempts INTEGER NOT NULL DEFAULT 1,"
	" on_interrupt INTEGER NOT NULL DEFAULT 0,"
	" isolated INTEGER NOT NULL DEFAULT 0,"
	" timeout REAL NOT NULL DEFAULT 0,"
	" run_at REAL NOT NULL DEFAULT 0,"
	" idempotency_key TEXT UNIQUE,"
	" result TEXT,"
	" error_code TEXT,"
	" error_message TEXT,"
	" progress REAL NOT NULL DEFAULT -1,"
	" progress_message TEXT,"
	" created_at REAL NOT NULL,"
	" started_at REAL NOT NULL DEFAULT 0,"
	" finished_at REAL NOT NULL DEFAULT 0,"
	" attempts TEXT,"
	" log TEXT,"
	" log_truncated INTEGER NOT NULL DEFAULT 0);",
	/* 1 → 2: a job run again by POST /v1/jobs/{id}/retry names the old one */
	"ALTER TABLE jobs ADD COLUMN retry_of TEXT;",
	/* 2 → 3: one B-tree per job instead of three.  An id is the store's
	 * prefix and the seq (unique by construction, never looked up here:
	 * the jobs are read once, at start), and most jobs have no
	 * idempotency key, yet both UNIQUE columns kept an index entry for
	 * every row, written with it and deleted with it.  SQLite cannot drop
	 * a column's UNIQUE, so the table is copied. */
	"CREATE TABLE jobs_v3 ("
	" seq INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL,"
	" plugin TEXT NOT NULL,"
	" job TEXT NOT NULL,"
	" args TEXT NOT NULL,"
	" state INTEGER NOT NULL,"
	" attempt INTEGER NOT NULL DEFAULT 0,"
	" max_attempts INTEGER NOT NULL DEFAULT 1,"
	" on_interrupt INTEGER NOT NULL DEFAULT 0,"
	" isolated INTEGER NOT NULL DEFAULT 0,"
	" timeout REAL NOT NULL DEFAULT 0,"
	" run_at REAL NOT NULL DEFAULT 0,"
	" idempotency_key TEXT,"
	" result TEXT,"
	" error_code TEXT,"
	" error_message TEXT,"
	" progress REAL NOT NULL DEFAULT -1,"
	" progress_message TEXT,"
	" created_at REAL NOT NULL,"
	" started_at REAL NOT NULL DEFAULT 0,"
	" finished_at REAL NOT NULL DEFAULT 0,"
	" attempts TEXT,"
	" log TEXT,"
	" log_truncated INTEGER NOT NULL DEFAULT 0,"
	" retry_of TEXT);"
	"INSERT INTO jobs_v3 SELECT seq, id, plugin, job, args, state, attempt, max_attempts,"
	" on_interrupt, isolated, timeout, run_at, idempotency_key, result, error_code,"
	" error_message, progress, progress_message, created_at, started_at, finished_at,"
	" attempts, log, log_truncated, retry_of FROM jobs;"
	"DROP TABLE jobs;"
	"ALTER TABLE jobs_v3 RENAME TO jobs;"
	"CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key)"
	" WHERE idempotency_key IS NOT NULL;",
	/* 3 → 4: a cancel request of a running job survives a crash (the
	 * next start ends the job cancelled instead of running it again) */
	"ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;",
};
#define SCHEMA_VERSION ((int)(sizeof(MIGRATIONS) / sizeof(*MIGRATIONS)))

static int map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
	case SQLITE_CANTOPEN:
		return -EACCES;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
	case SQLITE_FORMAT:
		return -EPROTO;
	default:
		return -EIO;
	}
}

static const char *cause(int code)
{
	switch (code) {
	case -ENOSPC:
		return "disk full";
	case -EROFS:
		return "read-only file system or file";
	case -EACCES:
		return "permission denied";
	case -ENOMEM:
		return "out of memory";
	case -EPROTO:
		return "not a crund store, or damaged";
	case -EFBIG:
		return "a file reached crund's file-size limit (ulimit -f)";
	default:
		return "I/O error";
	}
}

/* A write failed with SQLite's plain "disk I/O error": the file-size
 * limit (ulimit -f; SIGXFSZ is ignored, so a write past it fails with
 * EFBIG, which SQLite does not pass on) is the likely cause when one of
 * the store's files has reached it. */
static bool at_size_limit(const sq *s)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_FSIZE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return false;
	char wal[PATH_MAX];
	const char *files[] = {s->path, wal};
	snprintf(wal, sizeof(wal), "%s-wal", s->path);
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		struct stat st;
		if (stat(files[i], &st) == 0 && (rlim_t)st.st_size + 65536 > rl.rlim_cur)
			return true;
	}
	return false;
}

static int fail(sq *s, int rc, const char *what, char *err, size_t errlen)
{
	int code = map_rc(rc);
	if (code == -EIO && s->db && sqlite3_extended_errcode(s->db) == SQLITE_IOERR_WRITE &&
	    at_size_limit(s))
		code = -EFBIG;
	/* at open, what to do about a file that is not a store (or no longer) */
	const char *fix = code == -EPROTO && !strncmp(what, "cannot open", 11)
				  ? "; if it is crund's, restore it from a backup, else move it "
				    "away, or give another --store"
				  : "";
	snprintf(err, errlen, "store %s: %s: %s (%s)%s", s->path, what, cause(code),
		 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), fix);
	return code;
}

/* Are the files at the store's path (the database, its WAL) still the
 * ones crund has open?  Removed or replaced while it runs (an operator's
 * rm, a restore over it), what it commits goes to a file no start will
 * open: every later 201 would be lost.  Checked before each commit (two
 * stat calls a batch); the WAL's identity is taken when it first exists. */
static int same_files(sq *s, char *err, size_t errlen)
{
	struct stat st;
	const char *which = NULL;
	char wal[PATH_MAX];
	snprintf(wal, sizeof(wal), "%s-wal", s->path);
	if (stat(s->path, &st) < 0 || st.st_dev != s->db_dev || st.st_ino != s->db_ino)
		which = s->path;
	else if (stat(wal, &st) < 0)
		which = s->wal_ino ? wal : NULL;
	else if (!s->wal_ino) {
		s->wal_dev = st.st_dev;
		s->wal_ino = st.st_ino;
	} else if (st.st_dev != s->wal_dev || st.st_ino != s->wal_ino)
		which = wal;
	if (!which)
		return 0;
	snprintf(err, errlen,
		 "store %s: cannot write: %s was removed or replaced while crund runs (what "
		 "it wrote there since its last start is lost with it, and nothing more is "
		 "accepted): restart crund to open the store at that path again",
		 s->path, which);
	return -EIO;
}

/* mkdir -p with mode 0700 for what is missing. */
static int make_dirs(const char *path, char *err, size_t errlen)
{
	char *dup = strdup(path);
	if (!dup)
		return -ENOMEM;
	char *dir = dirname(dup);
	struct stat sb;
	int rc = 0;
	if (stat(dir, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode)) {
			snprintf(err, errlen, "store %s: %s is not a directory", path, dir);
			rc = -ENOTDIR;
		}
	} else {
		for (char *p = dir + 1; *p; p++) {
			if (*p != '/')
				continue;
			*p = '\0';
			if (mkdir(dir, 0700) < 0 && errno != EEXIST)
				rc = -errno;
			*p = '/';
			if (rc < 0)
				break;
		}
		if (rc == 0 && mkdir(dir, 0700) < 0 && errno != EEXIST)
			rc = -errno;
		if (rc < 0)
			snprintf(err, errlen,
				 "store %s: cannot create the directory %s: %s (create it, "
				 "writable by crund's user, or choose another --store)",
				 path, dir, strerror(-rc));
	}
	free(dup);
	return rc;
}

static int take_lock(sq *s, char *err, size_t errlen)
{
	size_t n = strlen(s->path) + 6;
	char *lp = malloc(n);
	if (!lp)
		return -ENOMEM;
	snprintf(lp, n, "%s.lock", s->path);
	struct stat st;
	if (stat(s->path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen,
			 "store %s is a directory: give the path of a file in it, e.g. --store "
			 "sqlite:%s/crund.db",
			 s->path, s->path);
		free(lp);
		return -EISDIR;
	}
	if (stat(s->path, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* a device, a FIFO, a socket: SQLite would fail later, after
		 * leaving PATH.lock and PATH-journal beside it (in /dev) */
		snprintf(err, errlen,
			 "store %s is not a regular file (a device, FIFO or socket): give the "
			 "path of a file",
			 s->path);
		free(lp);
		return -EPROTO;
	}
	s->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		int e = errno;
		snprintf(err, errlen, "store %s: cannot open its lock file %s: %s%s", s->path, lp,
			 strerror(e),
			 e == EACCES || e == EROFS || e == EPERM
				 ? " (crund writes its store and a lock file next to it: make the "
				   "directory writable by crund's user, or give another --store)"
				 : "");
		free(lp);
		return -e;
	}
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(s->lock_fd, F_SETLK, &fl) < 0) {
		int e = errno;
		struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
		if ((e == EAGAIN || e == EACCES) && fcntl(s->lock_fd, F_GETLK, &q) == 0 &&
		    q.l_type != F_UNLCK)
			snprintf(err, errlen,
				 "store %s is in use by another crund (pid %ld); stop it, or give "
				 "this one another --store",
				 s->path, (long)q.l_pid);
		else
			snprintf(err, errlen, "store %s: cannot lock %s: %s", s->path, lp,
				 strerror(e));
		free(lp);
		return e == EAGAIN || e == EACCES ? -EBUSY : -e;
	}
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(s->lock_fd, 0) == 0 && pwrite(s->lock_fd, pid, (size_t)len, 0) < 0) {
		/* the lock is what counts; the pid in the file is a courtesy */
	}
	free(lp);
	return 0;
}

static int exec_sql(sq *s, const char *sql, const char *what, char *err, size_t errlen)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : fail(s, rc, what, err, errlen);
}

static int query_int(sq *s, const char *sql, long long *ret)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_NOTFOUND;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Bring the schema to SCHEMA_VERSION; refuse a foreign or newer file. */
static int migrate(sq *s, char *err, size_t errlen)
{
	long long app = 0, ntables = 0, version = 0;
	int rc;
	if ((rc = query_int(s, "PRAGMA application_id", &app)) != SQLITE_OK ||
	    (rc = query_int(s, "SELECT count(*) FROM sqlite_master", &ntables)) != SQLITE_OK)
		return fail(s, rc, "cannot read the file", err, errlen);
	if (ntables > 0 && app != APP_ID) {
		snprintf(err, errlen,
			 "store %s: the file is an SQLite database of another program, not a "
			 "crund store; move it away or give another --store",
			 s->path);
		return -EPROTO;
	}
	if (ntables == 0) {
		/* new file: settings that only apply before the first table */
		if ((rc = exec_sql(s, "PRAGMA auto_vacuum=INCREMENTAL", "cannot set it up", err,
				   errlen)) < 0)
			return rc;
	} else if ((rc = query_int(s, "SELECT version FROM schema_version", &version)) !=
		   SQLITE_OK) {
		if (rc != SQLITE_NOTFOUND)
			return fail(s, rc, "cannot read its schema version", err, errlen);
		snprintf(err, errlen,
			 "store %s: its schema_version table is empty: damaged; restore it from a "
			 "backup, or move it away and give another --store",
			 s->path);
		return -EPROTO;
	}
	if (version > SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "store %s: written by a newer crund (schema version %lld; this crund "
			 "knows up to %d); run that version, or give another --store",
			 s->path, version, SCHEMA_VERSION);
		return -EPROTO;
	}
	for (int v = (int)version; v < SCHEMA_VERSION; v++) {
		char sql[128];
		if ((rc = exec_sql(s, "BEGIN IMMEDIATE", "cannot migrate", err, errlen)) < 0)
			return rc;
		snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d;", v + 1);
		if ((rc = exec_sql(s, MIGRATIONS[v], "cannot migrate its schema", err, errlen)) <
			    0 ||
		    (rc = exec_sql(s, sql, "cannot migrate its schema", err, errlen)) < 0) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
		if (v == 0) {
			char p[14], ins[160];
			crd_store_new_prefix(p);
			snprintf(ins, sizeof(ins),
				 "PRAGMA application_id=%d;"
				 "INSERT INTO meta VALUES ('id_prefix', '%s'), ('max_seq', '0');",
				 APP_ID, p);
			if ((rc = exec_sql(s, ins, "cannot initialise", err, errlen)) < 0) {
				sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
				return rc;
			}
		}
		if ((rc = exec_sql(s, "COMMIT", "cannot migrate its schema", err, errlen)) < 0)
			return rc;
	}
	return 0;
}

static int read_meta(sq *s, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "SELECT key, value FROM meta", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return fail(s, rc, "cannot read it", err, errlen);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		const char *v = (const char *)sqlite3_column_text(st, 1);
		if (!k || !v)
			continue;
		if (!strcmp(k, "id_prefix"))
			snprintf(s->prefix, sizeof(s->prefix), "%.13s", v);
		else if (!strcmp(k, "max_seq"))
			s->hw_rec = strtoull(v, NULL, 10);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail(s, rc, "cannot read it", err, errlen);
	long long m = 0;
	if ((rc = query_int(s, "SELECT coalesce(max(seq), 0) FROM jobs", &m)) != SQLITE_OK)
		return fail(s, rc, "cannot read it", err, errlen);
	s->row_max = (uint64_t)m;
	s->max_seq = s->row_max > s->hw_rec ? s->row_max : s->hw_rec;
	if (!s->prefix[0]) {
		snprintf(err, errlen, "store %s: damaged (no id prefix in its meta table)",
			 s->path);
		return -EPROTO;
	}
	return 0;
}

static const char UPSERT_SQL[] =
	"INSERT INTO jobs (seq, id, plugin, job, args, state, attempt, max_attempts,"
	" on_interrupt, isolated, timeout, run_at, idempotency_key, result, error_code,"
	" error_message, progress, progress_message, created_at, started_at, finished_at,"
	" attempts, log, log_truncated, retry_of, cancel_requested) VALUES"
	" (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
	" ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"
	" ON CONFLICT (seq) DO UPDATE SET state = ?6, attempt = ?7, max_attempts = ?8,"
	" on_interrupt = ?9, run_at = ?12, result = ?14, error_code = ?15,"
	" error_message = ?16, progress = ?17, progress_message = ?18, started_at = ?20,"
	" finished_at = ?21, attempts = ?22, log = ?23, log_truncated = ?24,"
	" cancel_requested = ?26";

static int write_deletions(sq *s, uint64_t *seqs, size_t n, uint64_t mark, uint64_t *hw);

static int cmp_seq(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void sq_close(void *be)
{
	sq *s = be;
	if (!s)
		return;
	if (s->ndeferred && s->del) { /* the deletions still due */
		uint64_t hw = s->hw_rec;
		if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
			if (write_deletions(s, s->deferred, s->ndeferred, s->max_seq, &hw) ==
			    SQLITE_OK)
				sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
			else
				sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		}
	}
	free(s->deferred);
	sqlite3_finalize(s->upsert);
	sqlite3_finalize(s->del);
	sqlite3_finalize(s->hiwater);
	sqlite3_finalize(s->probe);
	if (s->db)
		sqlite3_close(s->db); /* the last connection checkpoints the WAL */
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* releases the lock */
	free(s->path);
	free(s);
}

static int sq_open(const char *where, const crd_store_opts *o, void **ret_be, char *err,
		   size_t errlen)
{
	sq *s = calloc(1, sizeof(*s));
	int rc;
	if (!s || !(s->path = strdup(where))) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->lock_fd = -1;
	if ((rc = make_dirs(s->path, err, errlen)) < 0 || (rc = take_lock(s, err, errlen)) < 0)
		goto out;
	/* No allocation statistics (the store reads none): SQLite's malloc
	 * then takes no global mutex.  Only possible before SQLite's first
	 * use in the process; later it answers SQLITE_MISUSE, harmlessly. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	/* A new store is crund's user's alone (0600, whatever the umask): it
	 * holds every job's arguments and results.  SQLite gives its -wal and
	 * -shm files the database file's mode. */
	int nfd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (nfd >= 0)
		close(nfd);
	rc = sqlite3_open_v2(s->path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		rc = fail(s, rc, "cannot open it", err, errlen);
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	char pragmas[256];
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
		 " PRAGMA foreign_keys=OFF;"
		 " PRAGMA journal_size_limit=67108864;",
		 o->sync == CRD_STORE_SYNC_NORMAL ? "NORMAL" : "FULL");
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		snprintf(err, errlen,
			 "store %s is read-only (file attributes, permissions or a read-only "
			 "file system): crund must write its store; fix that or give another "
			 "--store",
			 s->path);
		rc = -EROFS;
		goto out;
	}
	if ((rc = exec_sql(s, pragmas, "cannot open it", err, errlen)) < 0 ||
	    (rc = migrate(s, err, errlen)) < 0 || (rc = read_meta(s, err, errlen)) < 0)
		goto out;
	if ((rc = sqlite3_prepare_v3(s->db, UPSERT_SQL, -1, SQLITE_PREPARE_PERSISTENT, &s->upsert,
				     NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v3(s->db, "DELETE FROM jobs WHERE seq BETWEEN ?1 AND ?2", -1,
				     SQLITE_PREPARE_PERSISTENT, &s->del, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v3(s->db,
				     "UPDATE meta SET value = ?1 WHERE key = 'max_seq'"
				     " AND CAST(value AS INTEGER) < ?1",
				     -1, SQLITE_PREPARE_PERSISTENT, &s->hiwater, NULL)) !=
		    SQLITE_OK ||
	    (rc = sqlite3_prepare_v3(s->db, "INSERT OR REPLACE INTO meta VALUES ('probe', ?1)", -1,
				     SQLITE_PREPARE_PERSISTENT, &s->probe, NULL)) != SQLITE_OK) {
		rc = fail(s, rc, "cannot prepare its statements", err, errlen);
		goto out;
	}
	snprintf(s->describe, sizeof(s->describe), "sqlite:%s (WAL, sync %s)", s->path,
		 o->sync == CRD_STORE_SYNC_NORMAL ? "normal" : "full");
	struct stat st;
	if (stat(s->path, &st) == 0) {
		s->db_dev = st.st_dev;
		s->db_ino = st.st_ino;
	}
	(void)same_files(s, err, errlen); /* the WAL's, when it exists */
	err[0] = '\0';
	*ret_be = s;
	return 0;
out:
	sq_close(s);
	return rc;
}

static const char *sq_describe(void *be) { return ((sq *)be)->describe; }
static const char *sq_prefix(void *be) { return ((sq *)be)->prefix; }
static uint64_t sq_max_seq(void *be) { return ((sq *)be)->max_seq; }

static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static int sq_load(void *be, int (*fn)(const crd_store_job *row, void *arg), void *arg)
{
	sq *s = be;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(
		s->db,
		"SELECT seq, id, plugin, job, args, state, attempt, max_attempts, on_interrupt,"
		" isolated, timeout, run_at, idempotency_key, result, error_code, error_message,"
		" progress, progress_message, created_at, started_at, finished_at, attempts, log,"
		" log_truncated, retry_of, cancel_requested FROM jobs ORDER BY seq",
		-1, &st, NULL);
	if (rc != SQLITE_OK)
		return map_rc(rc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		crd_store_job j = {
			.seq = (uint64_t)sqlite3_column_int64(st, 0),
			.id = col_text(st, 1),
			.plugin = col_text(st, 2),
			.job = col_text(st, 3),
			.args = col_text(st, 4),
			.state = sqlite3_column_int(st, 5),
			.attempt = (unsigned)sqlite3_column_int(st, 6),
			.max_attempts = (unsigned)sqlite3_column_int(st, 7),
			.on_interrupt = sqlite3_column_int(st, 8),
			.isolated = sqlite3_column_int(st, 9) != 0,
			.timeout = sqlite3_column_double(st, 10),
			.run_at = sqlite3_column_double(st, 11),
			.idem_key = col_text(st, 12),
			.result = col_text(st, 13),
			.err_code = col_text(st, 14),
			.err_msg = col_text(st, 15),
			.progress = sqlite3_column_double(st, 16),
			.progress_msg = col_text(st, 17),
			.created_at = sqlite3_column_double(st, 18),
			.started_at = sqlite3_column_double(st, 19),
			.finished_at = sqlite3_column_double(st, 20),
			.attempts = col_text(st, 21),
			.log = col_text(st, 22),
			.log_len = (size_t)sqlite3_column_bytes(st, 22),
			.log_truncated = sqlite3_column_int(st, 23) != 0,
			.retry_of = col_text(st, 24),
			.cancel_requested = sqlite3_column_int(st, 25) != 0,
		};
		if (!j.id || !j.plugin || !j.job || !j.args)
			continue; /* cannot be: NOT NULL columns */
		if (s->ndeferred &&
		    bsearch(&j.seq, s->deferred, s->ndeferred, sizeof(*s->deferred), cmp_seq))
			continue; /* deleted, not written yet */
		if ((rc = fn(&j, arg)) < 0) {
			sqlite3_finalize(st);
			return rc;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : map_rc(rc);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Upsert a job (every parameter is bound each time: no clear needed). */
static int write_row(sq *s, const crd_store_job *j)
{
	sqlite3_stmt *st = s->upsert;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)j->seq);
	bind_text(st, 2, j->id);
	bind_text(st, 3, j->plugin);
	bind_text(st, 4, j->job);
	bind_text(st, 5, j->args);
	sqlite3_bind_int(st, 6, j->state);
	sqlite3_bind_int(st, 7, (int)j->attempt);
	sqlite3_bind_int(st, 8, (int)j->max_attempts);
	sqlite3_bind_int(st, 9, j->on_interrupt);
	sqlite3_bind_int(st, 10, j->isolated);
	sqlite3_bind_double(st, 11, j->timeout);
	sqlite3_bind_double(st, 12, j->run_at);
	bind_text(st, 13, j->idem_key);
	bind_text(st, 14, j->result);
	bind_text(st, 15, j->err_code);
	bind_text(st, 16, j->err_msg);
	sqlite3_bind_double(st, 17, j->progress);
	bind_text(st, 18, j->progress_msg);
	sqlite3_bind_double(st, 19, j->created_at);
	sqlite3_bind_double(st, 20, j->started_at);
	sqlite3_bind_double(st, 21, j->finished_at);
	bind_text(st, 22, j->attempts);
	if (j->log_len)
		sqlite3_bind_text(st, 23, j->log, (int)j->log_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 23);
	sqlite3_bind_int(st, 24, j->log_truncated);
	bind_text(st, 25, j->retry_of);
	sqlite3_bind_int(st, 26, j->cancel_requested);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Write the high-water mark hw if the meta table holds less. */
static int write_hiwater(sq *s, uint64_t hw)
{
	if (hw <= s->hw_rec)
		return SQLITE_OK;
	sqlite3_bind_int64(s->hiwater, 1, (sqlite3_int64)hw);
	int rc = sqlite3_step(s->hiwater) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
	sqlite3_reset(s->hiwater);
	return rc;
}

/* Delete the jobs numbered in seqs (n of them; sorted here): one statement
 * per run of consecutive numbers (retention forgets the oldest jobs, so
 * they are mostly one run).  Deleting a row above the recorded high-water
 * mark records `mark` (*hw: then set to it). */
static int write_deletions(sq *s, uint64_t *seqs, size_t n, uint64_t mark, uint64_t *hw)
{
	if (!n)
		return SQLITE_OK;
	qsort(seqs, n, sizeof(*seqs), cmp_seq);
	if (seqs[n - 1] > s->hw_rec) {
		int rc = write_hiwater(s, mark);
		if (rc != SQLITE_OK)
			return rc;
		*hw = mark;
	}
	for (size_t i = 0; i < n;) {
		size_t k = i + 1;
		while (k < n && seqs[k] == seqs[k - 1] + 1)
			k++;
		sqlite3_bind_int64(s->del, 1, (sqlite3_int64)seqs[i]);
		sqlite3_bind_int64(s->del, 2, (sqlite3_int64)seqs[k - 1]);
		int rc = sqlite3_step(s->del);
		sqlite3_reset(s->del);
		if (rc != SQLITE_DONE)
			return rc;
		i = k;
	}
	return SQLITE_OK;
}

static int sq_commit(void *be, crd_store_row *const *rows, size_t n, uint64_t hi_seq, char *err,
		     size_t errlen)
{
	sq *s = be;
	/* the mark: every number handed out; the rows' highest upsert */
	uint64_t mark = hi_seq > s->max_seq ? hi_seq : s->max_seq, up_max = 0;
	size_t nbdel = 0;
	bool keyed = false, waited = false;
	for (size_t i = 0; i < n; i++) {
		const crd_store_job *j = &rows[i]->job;
		if (rows[i]->del) {
			nbdel++;
			waited = waited || rows[i]->waiters;
		} else {
			keyed = keyed || j->idem_key;
			if (j->seq > up_max)
				up_max = j->seq;
		}
	}
	if (up_max > mark)
		mark = up_max;
	int moved = same_files(s, err, errlen);
	if (moved < 0)
		return moved;
	/* the deletions due: those deferred, then this batch's (kept apart
	 * until the commit succeeds: a failed batch comes back whole) */
	uint64_t *dels = NULL;
	size_t ndel = s->ndeferred + nbdel;
	if (nbdel) {
		if (!(dels = malloc(ndel * sizeof(*dels))))
			return fail(s, SQLITE_NOMEM, "cannot write", err, errlen);
		if (s->ndeferred)
			memcpy(dels, s->deferred, s->ndeferred * sizeof(*dels));
		for (size_t i = 0, k = s->ndeferred; i < n; i++)
			if (rows[i]->del)
				dels[k++] = rows[i]->job.seq;
	}
	bool now = ndel && (ndel >= DEFER_DELETES || keyed || waited || n == 0);
	uint64_t hw = s->hw_rec;
	int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		free(dels);
		return fail(s, rc, "cannot write", err, errlen);
	}
	/* Deletions first (one statement per run of numbers), then writes: a
	 * batch never holds a job twice, and a job forgotten in it may free an
	 * idempotency key that a new job in it takes. */
	if (now)
		rc = write_deletions(s, dels ? dels : s->deferred, ndel, mark, &hw);
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++)
		if (!rows[i]->del)
			rc = write_row(s, &rows[i]->job);
	/* a number handed out that no row holds (a refused submission) */
	uint64_t row_max = up_max > s->row_max ? up_max : s->row_max;
	if (rc == SQLITE_OK && mark > row_max && mark > hw) {
		rc = write_hiwater(s, mark);
		hw = mark;
	}
	if (rc == SQLITE_OK && n == 0) {
		/* a probe: can the store take a write again? */
		sqlite3_bind_double(s->probe, 1, (double)time(NULL));
		rc = sqlite3_step(s->probe) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
		sqlite3_reset(s->probe);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		free(dels);
		int code = fail(s, rc, "cannot write", err, errlen);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return code;
	}
	s->max_seq = mark;
	s->hw_rec = hw;
	s->row_max = row_max;
	if (now) {
		free(dels);
		s->ndeferred = 0;
	} else if (dels) {
		free(s->deferred);
		s->deferred = dels;
		s->ndeferred = ndel;
		qsort(s->deferred, ndel, sizeof(*dels), cmp_seq); /* for load's bsearch */
	}
	/* give some freed pages back to the file system now and then */
	if (++s->commits_since_vacuum >= 1000) {
		s->commits_since_vacuum = 0;
		sqlite3_exec(s->db, "PRAGMA incremental_vacuum(256)", NULL, NULL, NULL);
	}
	return 0;
}

const crd_store_backend crd_store_sqlite = {
	.scheme = "sqlite",
	.durable = true,
	.threaded = true,
	.open = sq_open,
	.close = sq_close,
	.describe = sq_describe,
	.id_prefix = sq_prefix,
	.max_seq = sq_max_seq,
	.load = sq_load,
	.commit = sq_commit,
};
