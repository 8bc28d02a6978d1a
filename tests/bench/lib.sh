# shellcheck shell=sh
# lib.sh -- sourced by tests/bench/apply.sh and tests/bench/observe.sh (after
# `top` is set): the sandbox of a benchmark on the test fleet, and timing.
#
#   say MSG... / die MSG...       # to stderr; die ends the benchmark (its name first)
#   bench_sandbox NAME            # $ROTOR built and copied, $W a temporary HOME with a git identity,
#                                 # $F and $FD: the fleet, taken down (and $W removed) at exit
#   bench_fleet_up N BASE DIR...  # N hosts on BASE.1-N, each DIR made on every host, writable by
#                                 # rotorfleet; $KEY and $KH: the fleet's ssh key and known_hosts
#   bench_repo PARALLEL ENV...    # cd to a new state repository $R with those envs, reaching the fleet
#   bench_chain_yaml N BASE       # chain.yaml: servers host1-N with SANs BASE.1-N, client app
#   bench_hosts_yaml N BASE DIR   # hosts.yaml: hosts 1-N, a postgres-layout server role in DIR (probe: none)
#   ssh_floor N [ssh option...]   # seconds: OpenSSH, one session per host (xargs -P $P), sha256sum of
#                                 # $files; the script's floor_ok N OUT checks the output
#   $files                        # the three files every host serves
#   loadavg, now, minus A B, median X..., maxof X..., div A B
files="/srv/certs/server.crt /srv/certs/server.key /srv/certs/root.crt"
say() { printf '%s\n' "$*" >&2; }
die() { say "$(basename "$0"): FAILED: $*"; exit 1; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
now() { date +%s.%N; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a - b }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -n 1; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'; }

bench_sandbox() { # name
	ROTOR=${ROTOR:-$top/build/rotor}
	if ! make -s -C "$top" build/rotor >/dev/null 2>&1; then
		[ -x "$ROTOR" ] || die "make build/rotor failed and there is no $ROTOR"
		say "$(basename "$0"): warning: make build/rotor failed (a module being edited?); using the existing $ROTOR"
	fi
	W=$(mktemp -d "${TMPDIR:-/tmp}/rotor-bench-$1.XXXXXX")
	FD=$W/fleet
	F=$top/tests/fleet/fleet
	trap _bench_cleanup EXIT
	trap 'exit 130' INT TERM
	# A copy of the binary: other people rebuild build/rotor while this runs.
	cp "$ROTOR" "$W/rotor" || die "cannot copy $ROTOR"
	ROTOR=$W/rotor
	export HOME="$W/home"
	mkdir -p "$HOME"
	export GIT_CONFIG_NOSYSTEM=1
	unset ROTOR_KEY_FILE
	git config --global user.name "rotor bench"
	git config --global user.email "bench@rotor.invalid"
	git config --global init.defaultBranch main
}
_bench_cleanup() {
	trap - EXIT INT TERM
	"$F" down --dir "$FD" >/dev/null 2>&1 || :
	rm -rf "$W"
}

bench_fleet_up() { # n base dir...
	_n=$1 _base=$2; shift 2
	"$F" up "$_n" --dir "$FD" --base "$_base" >"$W/up.log" 2>&1 || { cat "$W/up.log" >&2; die "fleet up"; }
	say "fleet: $(tail -n 1 "$W/up.log")"
	KEY=$FD/id_ed25519
	KH=$FD/known_hosts
	_i=1
	while [ $_i -le "$_n" ]; do
		for _d in "$@"; do
			install -d -o rotorfleet -g rotorfleet -m 0755 "$FD/hosts/host$_i$_d"
		done
		_i=$((_i + 1))
	done
}

bench_repo() { # parallel env...
	_p=$1; shift
	R=$W/repo
	mkdir -p "$R"
	cd "$R" || exit 1
	git init -q .
	for _e in "$@"; do
		"$ROTOR" init --env "$_e" >/dev/null || die "rotor init --env $_e"
	done
	sed -i -e "s|^  user: deploy|  user: rotorfleet\n  identity: \"$KEY\"|" \
	       -e "s|^  known_hosts: .*|  known_hosts: \"$KH\"|" \
	       -e "s|^  connect_timeout: .*|  connect_timeout: 10s|" \
	       -e "s|^parallel: .*|parallel: $_p|" rotor.yaml
	grep -q "^parallel: $_p\$" rotor.yaml || die "rotor.yaml has no parallel: line"
}

bench_chain_yaml() { # n base
	printf 'subject: {O: Example, OU: bench}\nkey: {type: ec, curve: P-256}\nservers:\n'
	_i=1; while [ $_i -le "$1" ]; do printf '  host%d: {sans: [%s.%d]}\n' $_i "$2" $_i; _i=$((_i + 1)); done
	printf 'clients: [app]\n'
}

bench_hosts_yaml() { # n base dir
	printf 'hosts:\n'
	_i=1; while [ $_i -le "$1" ]; do
		printf '  host%d:\n    address: %s.%d\n    roles:\n' $_i "$2" $_i
		printf '      - {role: server, layout: postgres, dir: %s, identity: host%d, probe: none}\n' "$3" $_i
		_i=$((_i + 1))
	done
}

ssh_floor() { # n [ssh option...] -> seconds
	_n=$1; shift
	_a=$(now)
	# shellcheck disable=SC2086
	head -n "$_n" "$FD/hosts.txt" | cut -d' ' -f2 | xargs -P "$P" -I{} \
		ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i "$KEY" -o UserKnownHostsFile="$KH" \
		-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o ControlMaster=no \
		-o ConnectTimeout=10 -l rotorfleet "$@" {} sha256sum $files >"$W/ssh.out" 2>"$W/ssh.err" ||
		{ head -n 5 "$W/ssh.err" >&2; die "ssh floor ($_n hosts)"; }
	_b=$(now)
	floor_ok "$_n" "$W/ssh.out"
	minus "$_b" "$_a"
}
