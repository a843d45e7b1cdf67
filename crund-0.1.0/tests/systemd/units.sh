#!/bin/sh
# The systemd files as installed: the generated crund.service and
# crund.socket pass `systemd-analyze verify`, the service's hardening keeps
# the `systemd-analyze security` exposure at or below 2.0, and the
# sysusers.d / tmpfiles.d snippets parse and create what the units expect.
. "${top_srcdir:-.}/tests/systemd/common.inc"
scratch_init

echo "1..9"

unit="$top_builddir/systemd/crund.service"
socket="$top_srcdir/systemd/crund.socket"

# 1: the generated unit names the configured paths, no @var@ left.
if [ -f "$unit" ] && ! grep -q '@[a-z_]*@' "$unit" &&
	grep -q '^ExecStart=/.*/crund\( \|$\)' "$unit"; then
	ok "crund.service is generated with absolute paths"
else
	not_ok "crund.service is generated with absolute paths"
	diag_file "$unit"
fi

have_analyze=no
command -v systemd-analyze >/dev/null 2>&1 && have_analyze=yes

# 2: systemd-analyze verify.  ExecStart must name an existing executable,
# so verify a copy that starts the build tree's crund (or, before it is
# built, /bin/true: the rest of the unit is what is checked).
mkdir -p "$tmp/units"
exe=$CRUND
[ -x "$exe" ] || exe=/bin/true
sed "s|^ExecStart=[^ ]*|ExecStart=$exe|" "$unit" > "$tmp/units/crund.service"
cp "$socket" "$tmp/units/crund.socket"
if [ $have_analyze = no ]; then
	skip "systemd-analyze verify: systemd-analyze is not installed"
else
	(cd "$tmp/units" && systemd-analyze verify --man=no \
		"$tmp/units/crund.service" "$tmp/units/crund.socket") > "$tmp/verify.out" 2>&1
	rc=$?
	# verify reports problems on stderr but not always in its status.
	if [ $rc -eq 0 ] && ! grep -q 'crund' "$tmp/verify.out"; then
		ok "systemd-analyze verify crund.service crund.socket"
	else
		not_ok "systemd-analyze verify crund.service crund.socket (status $rc)"
		diag_file "$tmp/verify.out"
	fi
fi

# 3: exposure level <= 2.0.
if [ $have_analyze = no ]; then
	skip "security exposure: systemd-analyze is not installed"
elif ! systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
	skip "security exposure: this systemd-analyze has no --offline"
else
	systemd-analyze security --offline=true --no-pager \
		"$tmp/units/crund.service" > "$tmp/security.out" 2>&1
	level=$(sed -n 's/.*Overall exposure level for crund\.service: \([0-9.]*\).*/\1/p' \
		"$tmp/security.out")
	diag "exposure level: ${level:-none}"
	if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l + 0 <= 2.0) }'; then
		ok "systemd-analyze security exposure $level <= 2.0"
	else
		not_ok "systemd-analyze security exposure ${level:-unknown} <= 2.0"
		grep -v '^✓' "$tmp/security.out" | sed 's/^/# /'
	fi
fi

# 4: the stop timeout covers crund's default grace period (from its
# --help) plus the bounded cancellation cleanup (10 s) and flush (2 s).
help=
[ -x "$CRUND" ] && help=$("$CRUND" --help 2>/dev/null)
grace=$(printf '%s\n' "$help" | sed -n 's/^ *--grace .*(default \([0-9]*\)).*/\1/p')
: "${grace:=30}"
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s*$/\1/p' "$unit")
if [ -n "$stop" ] && [ "$stop" -ge $((grace + 15)) ]; then
	ok "TimeoutStopSec=$stop covers the default grace ($grace s) + cleanup"
else
	not_ok "TimeoutStopSec=${stop:-unset} covers the default grace ($grace s) + cleanup"
fi

# 5: the socket unit's addresses: the Unix socket in the service's
# RuntimeDirectory, and loopback TCP on the default port.
if grep -q '^ListenStream=/run/crund/crund.sock$' "$socket" &&
	grep -q '^ListenStream=127.0.0.1:7733$' "$socket" &&
	grep -q '^RuntimeDirectory=crund$' "$unit"; then
	ok "crund.socket listens on /run/crund/crund.sock and 127.0.0.1:7733"
else
	not_ok "crund.socket listens on /run/crund/crund.sock and 127.0.0.1:7733"
fi

# 6: sysusers.d snippet creates the user and group the units name.
sysusers="$top_builddir/systemd/sysusers/crund.conf"
if ! command -v systemd-sysusers >/dev/null 2>&1; then
	skip "sysusers.d snippet: systemd-sysusers is not installed"
else
	mkdir -p "$tmp/root/etc"
	systemd-sysusers --dry-run --root="$tmp/root" "$sysusers" > "$tmp/sysusers.out" 2>&1
	if grep -q "Creating user 'crund'" "$tmp/sysusers.out" &&
		grep -q "Creating group 'crund'" "$tmp/sysusers.out" &&
		grep -q '^User=crund$' "$unit" && grep -q '^SocketGroup=crund$' "$socket"; then
		ok "sysusers.d snippet creates user and group crund"
	else
		not_ok "sysusers.d snippet creates user and group crund"
		diag_file "$tmp/sysusers.out"
	fi
fi

# 7: tmpfiles.d snippet creates /run/crund (needs root to chown: it runs
# against a scratch root with the sysusers snippet applied first).
tmpfiles="$top_builddir/systemd/tmpfiles/crund.conf"
if ! command -v systemd-tmpfiles >/dev/null 2>&1; then
	skip "tmpfiles.d snippet: systemd-tmpfiles is not installed"
elif [ "$(id -u)" != 0 ]; then
	skip "tmpfiles.d snippet: creating it needs root"
else
	systemd-sysusers --root="$tmp/root" "$sysusers" > /dev/null 2>&1
	systemd-tmpfiles --root="$tmp/root" --create "$tmpfiles" > "$tmp/tmpfiles.out" 2>&1
	rc=$?
	mode=$(stat -c %a "$tmp/root/run/crund" 2>/dev/null)
	if [ $rc -eq 0 ] && [ "$mode" = 750 ]; then
		ok "tmpfiles.d snippet creates /run/crund mode 0750"
	else
		not_ok "tmpfiles.d snippet creates /run/crund mode 0750 (status $rc, mode ${mode:-none})"
		diag_file "$tmp/tmpfiles.out"
	fi
fi

# 8, 9: the documentation says what the code does: every option of
# `crund --help` is in crund(8), and every key of the installed config
# file is an option of `crund --help`.
if [ -z "$help" ]; then
	skip "crund(8) documents every option: crund is not built"
	skip "the config file's keys are crund's options: crund is not built"
else
	printf '%s\n' "$help" | sed -n 's/^  *\(--[a-z][a-z-]*\).*/\1/p' | sort -u > "$tmp/options"
	missing=
	while read -r o; do
		pat=$(printf '%s' "$o" | sed 's/-/\\\\-/g')
		grep -q -e "$pat" "$top_srcdir/man/crund.8" || missing="$missing $o"
	done < "$tmp/options"
	if [ -s "$tmp/options" ] && [ -z "$missing" ]; then
		ok "crund(8) documents all $(wc -l < "$tmp/options") options of crund --help"
	else
		not_ok "crund(8) documents every option of crund --help (missing:${missing:- no options parsed})"
	fi
	unknown=
	# shellcheck disable=SC2013 # the keys are single words ([a-z-]+)
	for k in $(sed -n 's/^#\([a-z][a-z-]*\) = .*/\1/p' "$top_builddir/systemd/etc/crund.conf"); do
		grep -q -x -e "--$k" "$tmp/options" || unknown="$unknown $k"
	done
	if [ -z "$unknown" ]; then
		ok "every key of crund.conf is an option of crund --help"
	else
		not_ok "every key of crund.conf is an option of crund --help (unknown:$unknown)"
	fi
fi

tap_done
