# bash completion for crunctl(1)                           -*- shell-script -*-
#
# Completes commands, options, plugin and job names and a job's argument
# keys ("seconds=").  Plugin data comes from `crunctl --json plugins`, asked
# quietly with the connection options already on the command line; when the
# daemon cannot be reached, only the static words are offered.

# shellcheck shell=bash disable=SC2207
# (SC2207: COMPREPLY=($(compgen ...)) is bash completion's own idiom; the
# words compgen prints contain no blanks.)

# Print the connection options of the current command line, one a line.
_crunctl_conn_opts()
{
	local i w
	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		case $w in
		--url | --socket | --token-file)
			printf '%s\n%s\n' "$w" "${words[i + 1]}"
			((i++))
			;;
		--url=* | --socket=* | --token-file=*)
			printf '%s\n' "$w"
			;;
		esac
	done
}

# The plugins JSON, fetched once per completion.
_crunctl_plugins_json()
{
	local -a conn
	local line
	while IFS= read -r line; do conn+=("$line"); done < <(_crunctl_conn_opts)
	"${words[0]}" "${conn[@]}" --json plugins 2>/dev/null
}

# Extract fields from the plugins JSON with python3 when available, or
# with a plain text scan of the one-line JSON otherwise.
#   $1: names | jobs PLUGIN | args PLUGIN JOB
_crunctl_query()
{
	local json
	json=$(_crunctl_plugins_json) || return
	[[ -n $json ]] || return
	if command -v python3 >/dev/null 2>&1; then
		python3 -c '
import json, sys
try:
    d = json.loads(sys.stdin.read())
except Exception:
    sys.exit(0)
plugins = d.get("plugins", d) if isinstance(d, dict) else d
what = sys.argv[1]
for p in plugins if isinstance(plugins, list) else []:
    if what == "names":
        print(p.get("name", ""))
    elif p.get("name") == sys.argv[2]:
        for j in p.get("jobs", []):
            if what == "jobs":
                print(j.get("name", ""))
            elif j.get("name") == sys.argv[3]:
                for a in j.get("args", []):
                    print(a.get("name", ""))
' "$@" <<<"$json"
	elif [[ $1 == names ]]; then
		# Without python3: plugin names only (the first "name" of each
		# plugin object follows its opening brace in the list).
		grep -o '{"name": *"[^"]*"' <<<"$json" | sed 's/.*"\([^"]*\)"$/\1/' | sort -u
	fi
}

_crunctl()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null 2>&1; then
		_init_completion -n = || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local commands="submit status wait cancel retry rm list log plugins info health help"
	local global_opts="--url --socket --token-file --json --quiet --no-color --help --version"

	# Values of options.
	case $prev in
	--url)
		COMPREPLY=($(compgen -W "http://127.0.0.1:7733 unix:" -- "$cur"))
		return
		;;
	--socket | --token-file)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	--timeout | --idempotency-key | --limit | --delay | --at | --max-attempts)
		return
		;;
	--on-interrupt)
		COMPREPLY=($(compgen -W "retry fail" -- "$cur"))
		return
		;;
	--args)
		if [[ $cur == @* ]]; then
			COMPREPLY=($(compgen -f -- "${cur#@}"))
			COMPREPLY=("${COMPREPLY[@]/#/@}")
		else
			COMPREPLY=($(compgen -W "- @" -- "$cur"))
			compopt -o nospace 2>/dev/null
		fi
		return
		;;
	--state)
		COMPREPLY=($(compgen -W "queued running succeeded failed cancelled" -- "$cur"))
		return
		;;
	--plugin)
		COMPREPLY=($(compgen -W "$(_crunctl_query names)" -- "$cur"))
		return
		;;
	esac

	# Find the command and the positional words after it.
	local i w cmd=""
	local -a pos=()
	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		case $w in
		--url | --socket | --token-file | --timeout | --args | --idempotency-key | \
			--delay | --at | --max-attempts | --on-interrupt | --state | --plugin | --limit)
			((i++))
			continue
			;;
		-*) continue ;;
		esac
		if [[ -z $cmd ]]; then
			cmd=$w
		else
			pos+=("$w")
		fi
	done

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$global_opts" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
	fi

	local cmd_opts=""
	case $cmd in
	submit)
		cmd_opts="--args --timeout --isolated --idempotency-key --delay --at --max-attempts"
		cmd_opts+=" --on-interrupt --wait --wait= --follow"
		;;
	wait) cmd_opts="--timeout" ;;
	list) cmd_opts="--state --plugin --limit" ;;
	log) cmd_opts="-f --follow" ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$cmd_opts --json --quiet --no-color --help" -- "$cur"))
		[[ ${COMPREPLY[0]-} == *= ]] && compopt -o nospace 2>/dev/null
		return
	fi

	case $cmd in
	help)
		((${#pos[@]} == 0)) && COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		;;
	plugins)
		((${#pos[@]} == 0)) && COMPREPLY=($(compgen -W "$(_crunctl_query names)" -- "$cur"))
		;;
	submit)
		if ((${#pos[@]} == 0)); then
			COMPREPLY=($(compgen -W "$(_crunctl_query names)" -- "$cur"))
		elif ((${#pos[@]} == 1)); then
			COMPREPLY=($(compgen -W "$(_crunctl_query jobs "${pos[0]}")" -- "$cur"))
		elif [[ $cur != *=* ]]; then
			local keys k
			keys=$(_crunctl_query args "${pos[0]}" "${pos[1]}")
			COMPREPLY=()
			for k in $keys; do
				[[ $k == "$cur"* ]] && COMPREPLY+=("$k=")
			done
			compopt -o nospace 2>/dev/null
		fi
		;;
	esac
} &&
	complete -F _crunctl crunctl

# ex: filetype=sh
