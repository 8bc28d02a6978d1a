#!/bin/sh
# run.sh [ARGS...] -- run every benchmark tests/bench/*.sh (except this
# one and lib.sh, the helpers they source) in name order, passing ARGS
# (e.g. --quick) to each.  Exits non-zero when any benchmark fails, after
# running them all.
set -u
here=$(cd "$(dirname "$0")" && pwd)
rc=0
for b in "$here"/*.sh; do
	[ -f "$b" ] || continue
	case $(basename "$b") in run.sh | lib.sh) continue ;; esac
	printf '== bench/%s\n' "$(basename "$b")"
	if ! sh "$b" "$@"; then
		printf '== bench/%s FAILED\n' "$(basename "$b")"
		rc=1
	fi
done
exit $rc
