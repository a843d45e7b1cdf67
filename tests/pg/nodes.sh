#!/usr/bin/env bash
# tests/pg/nodes.sh — several crund nodes on one PostgreSQL database,
# through their real interfaces (HTTP with curl, the database with psql, the
# processes with signals).  TAP.
#
#   - two nodes started at once on an empty database migrate it once
#   - three nodes: /v1/info lists them; submissions spread over every node
#     run exactly once
#   - any node answers for any job: GET, ?wait, /events, /log and cancel of
#     a job that runs on another node
#   - an idempotency key names one job among the nodes (also when two
#     nodes get it at once); the schema migration that made it so
#   - a node killed with SIGKILL mid-run: its jobs run again elsewhere
#     (on_interrupt retry) or fail (fail) within lease + election
#   - a node killed and started again at once with the same --node-id:
#     its jobs from before run again (their leases are not renewed)
#   - a node paused (SIGSTOP) past its lease, then resumed, does not
#     complete its job a second time over the attempt that replaced it,
#     and answers for it from the database afterwards
#   - the database restarted under load: the nodes reconnect, no
#     acknowledged job is lost
#
# A throwaway cluster (tests/pg/cluster.sh); exit 77 (skip) when
# PostgreSQL is not installed.  Short leases (2 s) keep it quick; every
# bound below is a bound, never a measurement.
# shellcheck disable=SC2317 # the checks are functions called through wait_until, bg and trap
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/../e2e/lib.sh"

PG=$top_srcdir/tests/pg/cluster.sh
PSQL=$(command -v psql || true)
[ -n "$PSQL" ] || {
	echo "1..0 # SKIP psql not installed (apt-get install postgresql-client)"
	exit 0
}
PGDIR=$("$PG" start 2>"$E2E_TMP/cluster.err")
rc=$?
if [ "$rc" = 77 ]; then
	echo "1..0 # SKIP $(cat "$E2E_TMP/cluster.err")"
	exit 0
fi
[ "$rc" = 0 ] || bail "cannot start a PostgreSQL cluster: $(cat "$E2E_TMP/cluster.err")"
PGURL=$("$PG" url "$PGDIR")
LEASE=2

NODE_PIDS=()
NODE_URLS=()
NODE_LOGS=()
pg_cleanup() {
	local p
	for p in "${NODE_PIDS[@]}" $(cat "$E2E_TMP"/pid[89] 2>/dev/null); do
		[ -n "$p" ] && kill -CONT "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
	done
	"$PG" stop "$PGDIR" >/dev/null 2>&1
	e2e_cleanup
}
trap pg_cleanup EXIT

sql() { "$PSQL" -qtAX "${2:-$PGURL}" -c "$1" 2>>"$E2E_TMP/psql.err"; }

# start_node I [FLAGS...]: node I on the database, listening on a free port.
start_node() {
	local i=$1
	shift
	CRUND_PID=
	start_crund --store "${NODE_STORE:-$PGURL}" --node-id "node$i" --lease "$LEASE" "$@" || return 1
	NODE_PIDS[i]=$CRUND_PID
	NODE_URLS[i]=$CRUND_URL
	NODE_LOGS[i]=$CRUND_LOG
	CRUND_PID= # the cleanup of lib.sh does not know several nodes
}

# on I: the next requests go to node I.
on() { CRUND_URL=${NODE_URLS[$1]}; }

stop_node() {
	local i=$1
	CRUND_PID=${NODE_PIDS[i]}
	CRUND_LOG=${NODE_LOGS[i]}
	stop_and_check_crund "node$i"
	NODE_PIDS[i]=
}

# wait_until SECONDS CMD...: polls CMD (about 10/s) until it succeeds.
wait_until() {
	local end=$((SECONDS + $(slow "$1")))
	shift
	while [ "$SECONDS" -le "$end" ]; do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# health_is CODE NODE...: every NODE's /v1/health answers CODE
health_is() {
	local code=$1 i
	shift
	for i in "$@"; do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "${NODE_URLS[i]}/v1/health")" = "$code" ] || return 1
	done
}

# --------------------------------------------- two nodes at once, empty
sql "CREATE DATABASE crund2" >/dev/null
PGURL2=${PGURL%/crund}/crund2
NODE_STORE=$PGURL2
STARTERS=()
for i in 8 9; do
	# at once: each in a subshell, which leaves its pid in a file
	(CRUND_N=$((i * 10)) && start_node "$i" && echo "${NODE_PIDS[i]}" >"$E2E_TMP/pid$i") &
	STARTERS+=($!)
done
wait "${STARTERS[@]}"
NODE_STORE=
n_up=0
for i in 8 9; do
	[ -s "$E2E_TMP/pid$i" ] && n_up=$((n_up + 1))
done
is "$n_up" 2 "two nodes started at once on an empty database both serve"
is "$(sql 'SELECT count(*), max(version) FROM crund_schema' "$PGURL2")" "1|3" \
	"the empty database was migrated once (one schema row, version 3)"
is "$(sql "SELECT count(DISTINCT value) FROM crund_meta WHERE key = 'id_prefix'" "$PGURL2")" 1 \
	"one id prefix for both nodes"
for i in 8 9; do
	[ -s "$E2E_TMP/pid$i" ] && kill -TERM "$(cat "$E2E_TMP/pid$i")"
done

# A version 1 database (idempotency keys checked by each node alone) that
# holds one key twice: the migration to version 2 leaves it on the oldest.
for i in 8 9; do
	[ -s "$E2E_TMP/pid$i" ] && wait_until 10 bash -c "! kill -0 $(cat "$E2E_TMP/pid$i") 2>/dev/null"
done
rm -f "$E2E_TMP"/pid[89]
sql "DROP INDEX crund_jobs_idem;
     CREATE INDEX crund_jobs_idem ON crund_jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
     UPDATE crund_schema SET version = 1;
     INSERT INTO crund_jobs (seq, id, plugin, job, args, state, idempotency_key, created_at, finished_at)
       SELECT k, 'v1-' || k, 'demo', 'noop', '{}', 2, 'v1-key', t, t
       FROM generate_series(1, 2) AS k, extract(epoch FROM now()) AS t" \
	"$PGURL2" >/dev/null
NODE_STORE=$PGURL2
start_node 8 || bail "node 8 did not start on a version 1 database"
NODE_STORE=
is "$(sql "SELECT max(version) FROM crund_schema; SELECT string_agg(id || '=' || coalesce(idempotency_key, '-'), ',' ORDER BY seq) FROM crund_jobs" "$PGURL2" | paste -sd' ')" \
	"3 v1-1=v1-key,v1-2=-" "version 1 → 3: a key held twice stays on the oldest job"
stop_node 8

start_fail badnode --store "$PGURL" --node-id 'node "one"'
is "$START_STATUS" 2 "a --node-id with a space and quotes: exit 2 (usage)"
like "$(cat "$START_LOG")" "--node-id 'node \"one\"': use up to 63 letters" "... naming the value and the rule"

# A libpq keyword string works as well as a URI; a password in either is
# never shown (log, /v1/health).
PGPORT_=$(echo "$PGURL" | sed -n 's|.*:\([0-9]*\)/crund$|\1|p')
start_node 7 --store "postgresql:host=127.0.0.1 port=$PGPORT_ dbname=crund user=crund password=kw-sekrit" ||
	bail "a node on a keyword string did not start"
like "$(cat "${NODE_LOGS[7]}")" "store postgresql:host=127.0.0.1 port=$PGPORT_ dbname=crund user=crund password=\*\*\* " \
	"a keyword connection string: the node starts, the log hides its password"
stop_node 7
start_node 7 --store "postgresql://crund:uri-sekrit@127.0.0.1:$PGPORT_/crund?password=q-sekrit&application_name=x" ||
	bail "a node on a URI with passwords did not start"
on 7
req GET /v1/health
is "$(grep -c sekrit "${NODE_LOGS[7]}" "$HTTP_BODY_FILE" | awk -F: '{s += $2} END {print s}')" 0 \
	"a URI with a password twice: neither is in the log or /v1/health"
stop_node 7

# ----------------------------------------------------------- three nodes
for i in 1 2 3; do
	start_node "$i" --max-running 4 || bail "node $i did not start"
done
on 1
req GET /v1/info
jt "d['node'] == 'node1'" "/v1/info names the node"
wait_until 5 bash -c "curl -s ${NODE_URLS[1]}/v1/info | grep -q 'node1\",\"node2\",\"node3'"
req GET /v1/info
jt "d['nodes'] == ['node1', 'node2', 'node3']" "/v1/info lists the three live nodes"
# a second process with a running node's id: the two overwrote each
# other's heartbeat, and one of them paused kept the election in place
start_fail dupnode "${CRUND_PLUGIN_ARGS[@]}" --listen "127.0.0.1:$(free_port)" --store "$PGURL" --node-id node1 --lease "$LEASE"
is "$START_STATUS" 1 "a second process with node1's id, node1 running: exit 1"
like "$(cat "$START_LOG")" "node id 'node1' is in use by a running node .*give each node its own --node-id" \
	"... saying which id and what to do"

# Submissions spread over every node (a node runs what it can and leaves
# the rest in the database for the others); each runs exactly once.
N=60
: >"$E2E_TMP/ids"
for ((k = 0; k < N; k++)); do
	on $((k % 3 + 1))
	submit '{"plugin":"demo","job":"sleep","args":{"seconds":0.2}}'
	[ "$HTTP_STATUS" = 201 ] && echo "$JOB_ID" >>"$E2E_TMP/ids"
done
is "$(wc -l <"$E2E_TMP/ids")" "$N" "$N submissions spread over three nodes: all 201"
all_ended() { [ "$(sql "SELECT count(*) FROM crund_jobs WHERE state >= 2")" = "$N" ]; }
check "every job ended" wait_until 30 all_ended
is "$(sql "SELECT count(*) FROM crund_jobs WHERE state = 2 AND attempt = 1 AND attempts IS NULL")" "$N" \
	"every job succeeded at its first attempt"
is "$(sql "SELECT count(DISTINCT node) FROM crund_jobs")" 3 "the jobs ran on all three nodes"
total=0
for i in 1 2 3; do
	n=$(curl -s "${NODE_URLS[i]}/metrics" | awk '/^crund_jobs_ended_total\{state="succeeded"\}/ {print $2}')
	total=$((total + ${n:-0}))
done
is "$total" "$N" "the nodes' metrics count $N runs in all: each job ran exactly once"

# --------------------------------------------------- any node, any job
on 1
submit '{"plugin":"demo","job":"sleep","args":{"seconds":30}}'
ID=$JOB_ID
is "$(sql "SELECT node FROM crund_jobs WHERE id = '$ID'")" node1 "a job submitted to node 1 runs there"
on 2
req GET "/v1/jobs/$ID"
jt "d['state'] == 'running' and d['node'] == 'node1'" "node 2 answers GET for a job running on node 1"
bg curl -sN --max-time 20 "${NODE_URLS[3]}/v1/jobs/$ID/events" -o "$E2E_TMP/events3"
bg curl -s --max-time 20 "${NODE_URLS[2]}/v1/jobs/$ID?wait=15" -o "$E2E_TMP/wait2"
WAITER=$BG_PID
wait_held 1 "${NODE_URLS[3]}"
wait_held 1 "${NODE_URLS[2]}"
t0=$(now_ms)
on 3
req POST "/v1/jobs/$ID/cancel"
# the answer is the row after the cancel: still running, or (node 1 was
# quick: NOTIFY, cancel, end, all before node 3 read the row) cancelled
like "$HTTP_STATUS:$(j 'd["state"]')" '^202:(running|cancelled)$' "node 3 accepts a cancel for a job running on node 1"
is "$(sql "SELECT cancel_requested OR state = 4 FROM crund_jobs WHERE id = '$ID'")" t \
	"node 3's 202 came after the request was in the database"
cancelled() { [ "$(sql "SELECT state FROM crund_jobs WHERE id = '$ID'")" = 4 ]; }
check "the cancel reaches node 1 and the job ends cancelled" wait_until 5 cancelled
t1=$(now_ms)
diag "cancel to cancelled in the database: $((t1 - t0)) ms"
wait "$WAITER"
jf "$E2E_TMP/wait2" "d['state']" >"$E2E_TMP/w2s"
is "$(cat "$E2E_TMP/w2s")" cancelled "a ?wait on node 2 ends with the state node 1 recorded"
sleep 0.5
ev=$(sse_json "$E2E_TMP/events3")
printf '%s' "$ev" >"$E2E_TMP/ev.json"
is "$(jf "$E2E_TMP/ev.json" "[e['event'] for e in d][-1] + ':' + d[-1]['data']['state']")" end:cancelled \
	"node 3's event stream of the job ends with its end event (cancelled)"
on 1
submit '{"plugin":"demo","job":"progress","args":{"steps":3,"interval":0.05}}' '?wait=10'
PID_JOB=$JOB_ID
on 2
req GET "/v1/jobs/$PID_JOB/log"
like "$HTTP_BODY" "step" "node 2 serves the log of a job node 1 ran"
# log lines and progress of a job running elsewhere reach the streams of
# other nodes (with the delay of the log's batches): crunctl log -f on
# node 2, the event stream on node 3
on 1
submit '{"plugin":"demo","job":"progress","args":{"steps":4,"interval":1}}'
RLOG=$JOB_ID
bg curl -sN --max-time 20 "${NODE_URLS[3]}/v1/jobs/$RLOG/events" -o "$E2E_TMP/events-rlog"
EV_RLOG=$BG_PID
"$top_builddir/client/crunctl" --url "${NODE_URLS[2]}" log -f "$RLOG" >"$E2E_TMP/rlog.out" 2>&1
is "$(grep -c 'info step [1-4]/4 done$' "$E2E_TMP/rlog.out")" 4 \
	"crunctl log -f on node 2 prints the 4 log lines of a job running on node 1, once each"
wait "$EV_RLOG"
sse_json "$E2E_TMP/events-rlog" >"$E2E_TMP/ev-rlog.json"
jt_file() { [ "$(jf "$1" "bool($2)")" = true ]; }
# (the lines logged before node 3 first read the job are in its /log, not
# events: on a loaded machine the first may be; the later ones, in order,
# once each, are events)
check "node 3's event stream of it has its later log lines as log events (time, level, message)" \
	jt_file "$E2E_TMP/ev-rlog.json" "(lambda m: len(m) >= 2 and m == ['step %d/4 done' % i for i in range(5 - len(m), 5)])([e['data']['message'] for e in d if e['event'] == 'log']) and all(e['data']['level'] == 'info' and rfc3339(e['data']['time']) for e in d if e['event'] == 'log')"
check "... and its progress as progress events, the last one 4/4" \
	jt_file "$E2E_TMP/ev-rlog.json" "[e['data'] for e in d if e['event'] == 'progress'][-1] == {'fraction': 1, 'message': 'step 4/4'}"
check "... and ends with its end event" \
	jt_file "$E2E_TMP/ev-rlog.json" "d[-1]['event'] == 'end' and d[-1]['data']['state'] == 'succeeded'"
on 3
req GET "/v1/jobs?limit=200"
jt "len(d['jobs']) == $((N + 3))" "node 3 lists every job of the database"
req GET "/v1/jobs/${PID_JOB}zz"
is "$HTTP_STATUS" 404 "an unknown id is 404 on any node"

# a failed attempt with attempts left goes back to the database's queue
# with its backoff (1 s after the first), for any node; it was kept
# "running" until its lease ran out and then counted as interrupted
on 1
submit '{"plugin":"demo","job":"fail","max_attempts":2}'
RF=$JOB_ID
retried() { [ "$(sql "SELECT state || ':' || attempt FROM crund_jobs WHERE id = '$RF'")" = "3:2" ]; }
check "a failed attempt on a shared store is retried after its backoff, and the job fails at its second" \
	wait_until 10 retried
req GET "/v1/jobs/$RF"
jt "[a['error']['code'] for a in d['attempts']] == ['plugin_error', 'plugin_error']" \
	"... both attempts failed as the plugin said (plugin_error), none interrupted"
jt "secs(d['attempts'][1]['started_at']) - secs(d['attempts'][0]['finished_at']) >= 0.85" \
	"... the second began after the first attempt's backoff (1 s ± 10 %)"

# a queued job held by another node: the answer is the database's row
on 1
submit '{"plugin":"demo","job":"noop","delay":600}'
QD=$JOB_ID
on 2
req POST "/v1/jobs/$QD/cancel"
is "$HTTP_STATUS:$(j 'd["state"]'):$(j 'd["error"]["code"]')" "202:cancelled:cancelled" \
	"node 2 cancels a delayed job node 1 took: 202 names it cancelled"
is "$(sql "SELECT state FROM crund_jobs WHERE id = '$QD'")" 4 "the database had it cancelled before that answer"
req POST "/v1/jobs/$QD/cancel"
is "$HTTP_STATUS" 409 "a second cancel: 409 job_ended"

# a DELETE on another node: the node that ran the job forgets its own
# ended copy too (a NOTIFY of the deletion); it answered 200 for it until
# its own retention dropped it
on 1
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
DJ=$JOB_ID
is "$(sql "SELECT node FROM crund_jobs WHERE id = '$DJ'")" node1 "a job ran on node 1"
on 2
req DELETE "/v1/jobs/$DJ"
is "$HTTP_STATUS" 204 "node 2 deletes it: 204"
is "$(sql "SELECT count(*) FROM crund_jobs WHERE id = '$DJ'")" 0 "... gone from the database"
gone_on_1() { [ "$(curl -s -o /dev/null -w '%{http_code}' "${NODE_URLS[1]}/v1/jobs/$DJ")" = 404 ]; }
check "... and node 1, which ran it, answers 404 for it" wait_until 5 gone_on_1
on 1
req GET "/v1/jobs?limit=500"
jt "'$DJ' not in [x['id'] for x in d['jobs']]" "... nor lists it"
# the same while node 1's LISTEN connection is lost (the NOTIFY of the
# deletion never reaches it): once it is back, node 1 checks its copies
# against the database (it answered 200 for such a job for an hour)
on 1
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
DJ2=$JOB_ID
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'crund node1' AND query LIKE 'LISTEN%'" >/dev/null
on 2
req DELETE "/v1/jobs/$DJ2"
is "$HTTP_STATUS" 204 "node 2 deletes a job node 1 ran while node 1's LISTEN connection is cut: 204"
gone2_on_1() { [ "$(curl -s -o /dev/null -w '%{http_code}' "${NODE_URLS[1]}/v1/jobs/$DJ2")" = 404 ]; }
check "... and node 1 answers 404 for it once it has listened again" wait_until 15 gone2_on_1
# a node's events carry the jobs it accepts into the database's queue
bg curl -sN --max-time 5 "${NODE_URLS[1]}/v1/events" -o "$E2E_TMP/acc-events"
ACC_EV=$BG_PID
wait_held 1 "${NODE_URLS[1]}"
on 1
submit '{"plugin":"demo","job":"noop","delay":600}'
ACC=$JOB_ID
wait "$ACC_EV"
check "node 1's /v1/events has the queued job it accepted (a delayed one, in the database's queue)" \
	grep -q "\"id\":\"$ACC\".*\"state\":\"queued\"" "$E2E_TMP/acc-events"
req POST "/v1/jobs/$ACC/cancel"

# ------------------------------------------- one idempotency key, any node
# A key names one job among all the nodes: the same submission again on
# another node is answered 200 with the first job, a different one 409.
on 1
submit '{"plugin":"demo","job":"noop","idempotency_key":"pg-k1"}'
K1=$JOB_ID
is "$HTTP_STATUS" 201 "a keyed submission on node 1: 201"
on 2
submit '{"plugin":"demo","job":"noop","idempotency_key":"pg-k1"}'
jt "d['id'] == '$K1'" "the same key on node 2: the job node 1 created"
is "$HTTP_STATUS" 200 "the same key on node 2: 200"
on 3
submit '{"plugin":"demo","job":"noop","idempotency_key":"pg-k1"}' '?wait=5'
jt "d['id'] == '$K1' and d['state'] == 'succeeded'" "the same key on node 3 with ?wait: that job, ended"
on 2
submit '{"plugin":"demo","job":"echo","args":{"value":"other"},"idempotency_key":"pg-k1"}'
is "$HTTP_STATUS" 409 "the key with another submission on node 2: 409"
is_error idempotency_conflict "... error code idempotency_conflict"
is "$(sql "SELECT count(*) FROM crund_jobs WHERE idempotency_key = 'pg-k1'")" 1 \
	"one row holds the key"
# at once on two nodes: one job per key, both answers name it
CURLS=()
for ((k = 0; k < 20; k++)); do
	for i in 1 2; do
		curl -s --max-time 10 -o "$E2E_TMP/twice.$k.$i" -w '%{http_code}\n' -XPOST \
			"${NODE_URLS[i]}/v1/jobs" \
			--data-binary "{\"plugin\":\"demo\",\"job\":\"noop\",\"idempotency_key\":\"pg-t$k\"}" \
			>"$E2E_TMP/twice.$k.$i.code" &
		CURLS+=($!)
	done
done
wait "${CURLS[@]}"
pairs_ok=0
for ((k = 0; k < 20; k++)); do
	c=$(sort "$E2E_TMP/twice.$k.1.code" "$E2E_TMP/twice.$k.2.code" | paste -sd,)
	id1=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$E2E_TMP/twice.$k.1")
	id2=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$E2E_TMP/twice.$k.2")
	if [ "$c" = 200,201 ] && [ -n "$id1" ] && [ "$id1" = "$id2" ]; then
		pairs_ok=$((pairs_ok + 1))
	else
		diag "pair $k: $c $id1 $id2" "node 1: $(head -c 300 "$E2E_TMP/twice.$k.1")" \
			"node 2: $(head -c 300 "$E2E_TMP/twice.$k.2")"
	fi
done
is "$pairs_ok" 20 "the same key on two nodes at once (20 pairs): 201 and 200, one job"
is "$(sql "SELECT count(*) FROM crund_jobs WHERE idempotency_key LIKE 'pg-t%'")" 20 \
	"... and 20 rows"
elsewhere=0
for i in 1 2 3; do
	n=$(curl -s "${NODE_URLS[i]}/metrics" | awk '/^crund_node_idempotency_elsewhere_total / {print $2}')
	elsewhere=$((elsewhere + ${n:-0}))
done
is "$elsewhere" 22 "the nodes' metrics count 22 submissions answered with another node's job"
like "$(curl -s "${NODE_URLS[2]}/metrics")" 'crund_node_info\{node="node2"\} 1' "/metrics names the node"

# --------------------------------------------------------------- SIGKILL
on 3
submit '{"plugin":"demo","job":"sleep","args":{"seconds":4},"max_attempts":2,"on_interrupt":"retry"}'
R1=$JOB_ID
submit '{"plugin":"demo","job":"sleep","args":{"seconds":4},"on_interrupt":"fail"}'
F1=$JOB_ID
# a retry job being cancelled (its cleanup takes 30 s) when the node dies
submit '{"plugin":"demo","job":"linger","args":{"seconds":30,"cleanup_seconds":30},"max_attempts":2,"on_interrupt":"retry"}'
C1=$JOB_ID
is "$(sql "SELECT string_agg(node, ',' ORDER BY seq) FROM crund_jobs WHERE id IN ('$R1', '$F1', '$C1')")" \
	"node3,node3,node3" "three jobs run on node 3"
req POST "/v1/jobs/$C1/cancel"
is "$HTTP_STATUS:$(j 'd["state"]')" "202:running" "the cancel of a job that cleans up for 30 s: 202, still running"
is "$(sql "SELECT cancel_requested FROM crund_jobs WHERE id = '$C1'")" t \
	"the 202 came after the request was in the database"
kill -KILL "${NODE_PIDS[3]}"
wait "${NODE_PIDS[3]}" 2>/dev/null
NODE_PIDS[3]=
t0=$(now_ms)
rerun() { [ "$(sql "SELECT state || ':' || attempt || ':' || node FROM crund_jobs WHERE id = '$R1'")" = "2:2:node1" ] ||
	[ "$(sql "SELECT state || ':' || attempt || ':' || node FROM crund_jobs WHERE id = '$R1'")" = "2:2:node2" ]; }
queued_later() { [ "$(sql "SELECT state = 0 AND run_at > extract(epoch FROM now()) FROM crund_jobs WHERE id = '$R1'")" = t ]; }
check "SIGKILL: the retry job is queued again due after its backoff (run_at ahead), as a failed attempt" \
	wait_until 30 queued_later
check "SIGKILL: the retry job runs again on another node and succeeds (attempt 2)" wait_until 30 rerun
t1=$(now_ms)
diag "SIGKILL to the re-run's success: $((t1 - t0)) ms (lease $LEASE s)"
is "$(sql "SELECT state || ':' || error_code FROM crund_jobs WHERE id = '$F1'")" "3:interrupted" \
	"SIGKILL: the on_interrupt=fail job failed with interrupted"
is "$(sql "SELECT state || ':' || attempt || ':' || error_code FROM crund_jobs WHERE id = '$C1'")" \
	"4:1:cancelled" "SIGKILL: the retry job somebody was cancelling ended cancelled, not run again"
is "$(sql "SELECT (attempts::jsonb)->0->>'node' FROM crund_jobs WHERE id = '$R1'")" node3 \
	"the job's attempts name the node that ran its first attempt"
on 1
req GET "/v1/jobs/$R1"
jt "d['attempt'] == 2 and d['attempts'][0]['error']['code'] == 'interrupted' and d['node'] in ('node1', 'node2')" \
	"GET shows the attempt that was interrupted and the node of the new one"
"$top_builddir/client/crunctl" --url "${NODE_URLS[1]}" status "$R1" >"$E2E_TMP/status-r1" 2>&1
like "$(cat "$E2E_TMP/status-r1")" '^Node: +node[12]$' "crunctl status names the node of the job's attempt"
like "$(cat "$E2E_TMP/status-r1")" 'Attempt 1: .*\(interrupted\)  on node node3' \
	"... and the node of its interrupted attempt"

# --------------------------------------------------------------- SIGSTOP
on 2
submit '{"plugin":"demo","job":"sleep","args":{"seconds":1},"max_attempts":2,"on_interrupt":"retry"}'
S1=$JOB_ID
is "$(sql "SELECT node FROM crund_jobs WHERE id = '$S1'")" node2 "a job runs on node 2"
kill -STOP "${NODE_PIDS[2]}"
moved() { [ "$(sql "SELECT state || ':' || attempt || ':' || node FROM crund_jobs WHERE id = '$S1'")" = "2:2:node1" ]; }
check "SIGSTOP past the lease: the job runs again on node 1 and succeeds" wait_until 30 moved
kill -CONT "${NODE_PIDS[2]}"
sleep 2 # node 2's attempt ends now (its sleep is over) and tries to record it
is "$(sql "SELECT state || ':' || attempt || ':' || node FROM crund_jobs WHERE id = '$S1'")" "2:2:node1" \
	"resumed, node 2 does not overwrite the attempt that replaced its own"
is "$(sql "SELECT jsonb_array_length(attempts::jsonb) FROM crund_jobs WHERE id = '$S1'")" 1 \
	"the job records one interrupted attempt, not two runs"
on 2
req GET /v1/health
is "$HTTP_STATUS" 200 "node 2 serves again after SIGCONT"
req GET "/v1/jobs/$S1"
jt "d['state'] == 'succeeded' and d['attempt'] == 2 and d['node'] == 'node1'" \
	"node 2 answers for the job with the database's attempt, not its own stale one"
# the same with a fail-policy job: ended interrupted while node 2 slept;
# node 2's own end (succeeded) is kept out, and it answers as the database
submit '{"plugin":"demo","job":"sleep","args":{"seconds":1},"on_interrupt":"fail"}'
S2=$JOB_ID
is "$(sql "SELECT node FROM crund_jobs WHERE id = '$S2'")" node2 "a fail-policy job runs on node 2"
kill -STOP "${NODE_PIDS[2]}"
failed_int() { [ "$(sql "SELECT state || ':' || error_code FROM crund_jobs WHERE id = '$S2'")" = "3:interrupted" ]; }
check "SIGSTOP past the lease: the fail-policy job ends failed, interrupted" wait_until 30 failed_int
kill -CONT "${NODE_PIDS[2]}"
sleep 2 # node 2's attempt ends now and tries to record it
is "$(sql "SELECT state || ':' || error_code FROM crund_jobs WHERE id = '$S2'")" "3:interrupted" \
	"resumed, node 2 does not overwrite the end the database holds"
req GET "/v1/jobs/$S2"
jt "d['state'] == 'failed' and d['error']['code'] == 'interrupted'" \
	"node 2 answers with the database's end, not its own succeeded"

# ------------------------------------------------- the elected node paused
# The elected node's session holds the election's lock while it is paused:
# another node ends that session once the holder's heartbeat is a lease
# old, is elected, and requeues the paused node's expired jobs.
leader() { # the node whose session holds the election's advisory lock
	sql "SELECT substr(a.application_name, 7) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
	     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $((0x6372)) AND l.objid = $((0x756e0002))"
}
has_leader() { [ -n "$(leader)" ]; }
wait_until 10 has_leader
L=$(leader)
case $L in node1) O=2 ;; node2) O=1 ;; *) O= ;; esac
if [ -n "$O" ]; then
	Li=${L#node}
	on "$Li"
	submit '{"plugin":"demo","job":"sleep","args":{"seconds":1},"max_attempts":2,"on_interrupt":"retry"}'
	S2=$JOB_ID
	is "$(sql "SELECT node FROM crund_jobs WHERE id = '$S2'")" "$L" "a job runs on the elected node ($L)"
	kill -STOP "${NODE_PIDS[Li]}"
	t0=$(now_ms)
	moved2() { [ "$(sql "SELECT state || ':' || attempt || ':' || node FROM crund_jobs WHERE id = '$S2'")" = "2:2:node$O" ]; }
	check "the elected node paused past its lease: node $O takes over and runs its job again" \
		wait_until 30 moved2 ||
		sql "SELECT state, attempt, node, lease_until - extract(epoch FROM now()) FROM crund_jobs WHERE id = '$S2'" | sed 's/^/# row: /'
	diag "SIGSTOP of the elected node to its job's re-run: $(($(now_ms) - t0)) ms (lease $LEASE s)"
	is "$(leader)" "node$O" "node $O holds the election now"
	check "node $O's log says it ended the paused node's session" \
		grep -q "node $L held the election but its heartbeat is over $LEASE s old (paused or cut off): ended its database session" "${NODE_LOGS[O]}"
	kill -CONT "${NODE_PIDS[Li]}"
	sleep 2
	is "$(sql "SELECT state || ':' || attempt || ':' || node FROM crund_jobs WHERE id = '$S2'")" "2:2:node$O" \
		"resumed, the deposed node does not overwrite the attempt that replaced its own"
	check "the deposed node reconnects and serves again" wait_until 15 health_is 200 "$Li"
	is "$(leader)" "node$O" "... and does not take the election back while node $O lives"
else
	for _ in $(seq 7); do ok 0 "# SKIP the elected node is not node 1 or 2 ($L)"; done
fi

# ------------------------------------------- the database restarted, idle
# Nodes that are not writing learn that the database went away (their
# health says 503 within seconds) and reconnect by themselves once it is
# back: the first request to each then works, no connection of the
# previous server is used again.
"$PG" restart "$PGDIR" 3 >"$E2E_TMP/restart-idle.out" 2>&1 &
RESTARTER=$!
check "the database down, nodes idle: every node's health says 503" wait_until 10 health_is 503 1 2
on 1
req GET /v1/health
jt "d['status'] == 'store_unavailable' and 'cannot be reached' in d['message']" \
	"... naming the cause (the database cannot be reached)"
wait "$RESTARTER" || bail "the database did not start again: $(cat "$E2E_TMP/restart-idle.out")"
check "the database back: every node's health is 200 again by itself" wait_until 15 health_is 200 1 2
for i in 1 2; do
	on "$i"
	submit '{"plugin":"demo","job":"noop"}' '?wait=5'
	is "$HTTP_STATUS:$(j 'd["state"]')" "201:succeeded" "after the restart, node $i's first submission is accepted and runs"
	req GET "/v1/jobs?limit=1"
	is "$HTTP_STATUS" 200 "after the restart, node $i's first listing is answered"
done

# ------------------------------------------------------ database restart
start_node 3 --max-running 4 || bail "node 3 did not start again"
: >"$E2E_TMP/acked"
load() {
	local k=0 code id
	while [ ! -e "$E2E_TMP/stop-load" ]; do
		k=$((k + 1))
		code=$(curl -s --max-time 5 -o "$E2E_TMP/load.$1" -w '%{http_code}' \
			-XPOST "${NODE_URLS[$((k % 3 + 1))]}/v1/jobs" \
			-d '{"plugin":"demo","job":"sleep","args":{"seconds":0.05}}')
		if [ "$code" = 201 ]; then
			id=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$E2E_TMP/load.$1")
			echo "$id" >>"$E2E_TMP/acked"
		else
			echo "$code" >>"$E2E_TMP/refused"
		fi
	done
}
bg load a
LOADER=$BG_PID
bg load b
LOADER2=$BG_PID
sleep 2
# down longer than a lease: nobody can renew meanwhile, and the jobs that
# ended while it was down must still end as they ended, not "interrupted"
"$PG" restart "$PGDIR" $((LEASE + 1)) >"$E2E_TMP/restart.out" 2>&1 &
RESTARTER=$!
# while it is down a node serves what it can; reads that need the
# database answer 503 at once
check "the database down: node 2's health says so (503)" wait_until 10 health_is 503 2
on 2
t0=$(now_ms)
req GET "/v1/jobs?limit=5"
t1=$(now_ms)
is "$HTTP_STATUS" 503 "the database down: a listing answers 503"
is_error store_unavailable "... error.code store_unavailable"
req GET "/v1/jobs/$ID"
t2=$(now_ms)
is "$HTTP_STATUS" 503 "the database down: GET of a job held in the database answers 503"
diag "answers with the database down: listing $((t1 - t0)) ms, GET $((t2 - t1)) ms"
check "... both within 5 s, not a hang" test $((t2 - t0)) -lt 5000
wait "$RESTARTER" || bail "the database did not start again: $(cat "$E2E_TMP/restart.out")"
sleep 3
touch "$E2E_TMP/stop-load"
wait "$LOADER" "$LOADER2"
acked=$(sort -u "$E2E_TMP/acked" | wc -l)
diag "acknowledged: $acked; refused while the database was down: $(wc -l <"$E2E_TMP/refused" 2>/dev/null || echo 0)"
check "the load was real (over 10 acknowledged jobs)" test "$acked" -gt 10
check "every node is healthy again after the restart" wait_until 15 health_is 200 1 2 3
sort -u "$E2E_TMP/acked" | sed "s/.*/'&'/" | paste -sd, >"$E2E_TMP/acked.sql"
done_acked() { [ "$(sql "SELECT count(*) FROM crund_jobs WHERE state = 2 AND id IN ($(cat "$E2E_TMP/acked.sql"))")" = "$acked" ]; }
check "no acknowledged job is lost: all $acked ended succeeded" wait_until 30 done_acked ||
	sql "SELECT id, state, attempt, max_attempts, node, error_code, error_message FROM crund_jobs
	     WHERE state <> 2 AND id IN ($(cat "$E2E_TMP/acked.sql"))" | sed 's/^/# not succeeded: /'
# and a refused one (503) is not run behind the caller's back: the load's
# jobs in the database are the acknowledged ones
is "$(sql "SELECT count(*) FROM crund_jobs WHERE job = 'sleep' AND (args::json->>'seconds')::float8 = 0.05")" "$acked" \
	"no job of a refused submission was written later: the load's rows are the $acked acknowledged"
on 1
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
jt "d['state'] == 'succeeded'" "submissions work again after the restart"

# ------------------------- SIGKILL, then at once again with the same name
# The new process must not keep the old one's jobs alive: it renews the
# leases of the jobs it holds, not of every row that bears its name.
on 3
submit '{"plugin":"demo","job":"sleep","args":{"seconds":3},"max_attempts":2,"on_interrupt":"retry"}'
R2=$JOB_ID
is "$(sql "SELECT node FROM crund_jobs WHERE id = '$R2'")" node3 "a job runs on node 3"
kill -KILL "${NODE_PIDS[3]}"
wait "${NODE_PIDS[3]}" 2>/dev/null
NODE_PIDS[3]=
start_node 3 --max-running 4 || bail "node 3 did not start again"
rerun2() { [ "$(sql "SELECT state || ':' || attempt FROM crund_jobs WHERE id = '$R2'")" = "2:2" ]; }
check "SIGKILL and a restart as node3 at once: its job runs again (attempt 2) and succeeds" \
	wait_until 40 rerun2 ||
	sql "SELECT state, attempt, node, lease_until - extract(epoch FROM now()) FROM crund_jobs WHERE id = '$R2'" |
	sed 's/^/# row: /'

# ------------------------------------------------------ a node with no slot
# A node whose slots are all busy hears of new work (a NOTIFY) that it
# cannot take: it must wait for a slot, not go round its loop without
# yielding.  It did: a core at 100% and its HTTP API stalled until its job
# ended.  A resource bound, not a timing: CPU under half of the wall time
# over 2 s (the spin used all of it; an idle node uses a few per cent).
start_node 9 --max-running 1 || bail "node 9 did not start"
on 9
submit '{"plugin":"demo","job":"sleep","args":{"seconds":60}}'
busy9=$JOB_ID
poll_state "$busy9" running 5
on 1
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
t0=$(cpu_ticks "${NODE_PIDS[9]}")
sleep 2
t1=$(cpu_ticks "${NODE_PIDS[9]}")
check "a node with no free slot that hears of new work does not spin (CPU $((t1 - t0)) ticks of $((2 * $(getconf CLK_TCK))) over 2 s)" \
	test "$((t1 - t0))" -lt "$(getconf CLK_TCK)"
on 9
req GET /v1/health
is "$HTTP_STATUS" 200 "... and it answers"
req POST "/v1/jobs/$busy9/cancel"

for i in 1 2 3 9; do
	stop_node "$i"
done
is "$(sql "SELECT count(*) FROM crund_nodes")" 0 "stopped nodes leave the nodes table"

# ------------------------------------------- retention and --max-queued
# Node 5 starts alone (it is elected) with a retention of 4 s and a queue
# of 3; node 6 keeps the defaults.  The elected node's retention reaches
# node 6's own copies of what it prunes: a NOTIFY per 300 jobs, and here
# 600 rows more end with node 6's first job, so one prune deletes them all
# in several; --max-queued counts the database's queue.
start_node 5 --retain-seconds 4 --max-queued 3 || bail "node 5 did not start"
elected5() { [ "$(sql "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1")" = 1 ]; }
wait_until 5 elected5
start_node 6 || bail "node 6 did not start"
on 6
: >"$E2E_TMP/ran6"
for k in 1 2 3 4 5; do
	submit '{"plugin":"demo","job":"noop"}' '?wait=5'
	echo "$JOB_ID" >>"$E2E_TMP/ran6"
done
OLD6=$(head -1 "$E2E_TMP/ran6")
sql "INSERT INTO crund_jobs (seq, id, plugin, job, args, state, created_at, finished_at)
     SELECT 9000000000000 + g, 'bulk' || g, 'demo', 'noop', '{}', 2, f, f
     FROM generate_series(1, 600) g, (SELECT finished_at AS f FROM crund_jobs WHERE id = '$OLD6') x" >/dev/null
is "$(sql "SELECT count(*) FROM crund_jobs WHERE id LIKE 'bulk%'")" 600 "600 more ended rows, ended with node 6's first job"
pruned() { [ "$(sql "SELECT count(*) FROM crund_jobs WHERE id LIKE 'bulk%' OR id = '$OLD6'")" = 0 ]; }
check "the elected node prunes them and node 6's first job by its --retain-seconds 4" wait_until 15 pruned
gone_on_6() {
	local id
	while read -r id; do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "${NODE_URLS[6]}/v1/jobs/$id")" = 404 ] || return 1
	done <"$E2E_TMP/ran6"
}
check "... and node 6, which ran the 5 jobs, answers 404 for each once pruned" wait_until 15 gone_on_6
on 6
req GET "/v1/jobs?limit=500"
jt "not set(open('$E2E_TMP/ran6').read().split()) & set(x['id'] for x in d['jobs'])" "... nor lists them"
on 6
for k in 1 2 3; do
	submit '{"plugin":"demo","job":"noop","delay":600}'
	is "$HTTP_STATUS" 201 "a delayed job on node 6 ($k of 3): 201"
done
counted() { [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
	-d '{"plugin":"demo","job":"noop","delay":600}' "${NODE_URLS[5]}/v1/jobs")" = 429 ]; }
check "node 5 (--max-queued 3) refuses a 4th queued job with 429 once it has counted the database's queue" \
	wait_until 5 counted
on 5
submit '{"plugin":"demo","job":"noop","delay":600}'
is "$HTTP_STATUS:$(j 'd["error"]["code"]')" "429:queue_full" "... every time (the shared queue holds 3): queue_full"
submit '{"plugin":"demo","job":"noop"}' '?wait=5'
jt "d['state'] == 'succeeded'" "... while a job it can run at once is taken (a free slot is not the queue)"
on 6
submit '{"plugin":"demo","job":"noop","delay":600}'
is "$HTTP_STATUS" 201 "node 6 (default --max-queued) still takes one"
for i in 5 6; do
	stop_node "$i"
done
done_testing
