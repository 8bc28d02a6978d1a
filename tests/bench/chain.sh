#!/bin/sh
# chain.sh [--quick] -- chain generation benchmark (DESIGN.md section 8).
#
# One chain (root, server CA, client CA, 2 servers, N client leaves, every
# private key encrypted) for EC P-256 and RSA 3072, made by:
#   rotor    `rotor rotate start` on a throwaway repository when build/rotor
#            has that command (generation + export + one git commit);
#            otherwise tests/bench/chain/pkibench.c, a driver that calls
#            pki_generate + pki_export and writes the files
#   rotor-lib  the same driver (library cost without git; for RSA only when
#            the CLI is missing, to keep the run short)
#   openssl  tests/bench/chain/openssl-chain.sh: genpkey, req, x509 -req a leaf
#   cfssl    tests/bench/chain/cfssl-chain.sh: gencert a leaf (keys unencrypted:
#            cfssl cannot encrypt them, so it does less work than the others)
# and prints wall time, ratio to rotor, and peak RSS (largest process) per run.
#
# Slow runs are shortened and extrapolated linearly per certificate (marked
# "~" in the table): RSA 3072 key generation costs about a second of CPU a
# key in every tool.  Knobs (environment):
#   CHAIN_LEAVES=1000            client leaves, the target of every row
#   CHAIN_RSA_ROTOR_LEAVES=200   leaves actually made by rotor for RSA 3072
#                                (1000 take about 4 minutes on 2 idle cores)
#   CHAIN_RSA_SLOW_LEAVES=40     ... by the openssl script and cfssl for RSA 3072
#   CHAIN_THREADS=0              rotor worker threads (0 = online CPUs)
# --quick: 100 / 20 / 10 leaves, for a smoke test.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/bench/chain
LEAVES=${CHAIN_LEAVES:-1000}
RSA_ROTOR=${CHAIN_RSA_ROTOR_LEAVES:-200}
RSA_SLOW=${CHAIN_RSA_SLOW_LEAVES:-40}
THREADS=${CHAIN_THREADS:-0}
if [ "${1:-}" = --quick ]; then
	LEAVES=100 RSA_ROTOR=20 RSA_SLOW=10
fi
[ "$RSA_ROTOR" -gt "$LEAVES" ] && RSA_ROTOR=$LEAVES
[ "$RSA_SLOW" -gt "$LEAVES" ] && RSA_SLOW=$LEAVES

work=$(mktemp -d "${TMPDIR:-/tmp}/rotor-bench-chain.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
say() { printf '%s\n' "$*" >&2; }

if [ ! -x /usr/bin/time ]; then
	say "chain.sh: installing GNU time for peak RSS"
	sh "$top/tests/deps.sh" time
fi
cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }
load_start=$(loadavg)

# ---- the rotor library driver ----
# Against the release objects (make build/rel/...); when make cannot build
# them (a module being edited), compile the same sources here instead.
cflags="-std=c11 -D_POSIX_C_SOURCE=200809L -O2 -g -I$top $(pkg-config --cflags openssl yaml-0.1 jansson)"
libs="$(pkg-config --libs openssl yaml-0.1 jansson) -lpthread"
srcs=""
for f in "$top"/common/*.c "$top"/reconcile/tls/*.c "$top"/reconcile/services/*.c "$top"/reconcile/spec/*.c "$top"/reconcile/pki/*.c; do
	[ -f "$f" ] && srcs="$srcs ${f#"$top"/}"
done
objs=""
for f in $srcs; do objs="$objs build/rel/${f%.c}.o"; done
built=""
# shellcheck disable=SC2086
if (cd "$top" && make -s $objs) >"$work/make.log" 2>&1; then
	built="release objects"
	set --
	for o in $objs; do set -- "$@" "$top/$o"; done
else
	say "chain.sh: make could not build the release objects (see below); compiling the sources directly"
	sed 's/^/  | /' "$work/make.log" | tail -n 5 >&2
	mkdir -p "$work/obj"
	set --
	for f in $srcs; do
		o="$work/obj/$(echo "$f" | tr / _).o"
		# shellcheck disable=SC2086
		cc $cflags -w -c "$top/$f" -o "$o"
		set -- "$@" "$o"
	done
	built="sources compiled by chain.sh"
fi
# shellcheck disable=SC2086
cc $cflags -o "$work/pkibench" "$here/pkibench.c" "$@" $libs

# The secret key file every tool encrypts with (cfssl ignores it).
cat >"$work/mksecret.sh" <<'EOF'
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$1"; echo >>"$1"; chmod 600 "$1"
EOF
sh "$work/mksecret.sh" "$work/secret.key"

# ---- the rotor CLI, when it has `rotate start` ----
rotor_cli=""
if [ -x "$top/build/rotor" ] && "$top/build/rotor" help rotate 2>&1 | grep -q 'rotate start'; then
	rotor_cli="$top/build/rotor"
fi

# chain.yaml for the CLI: KEYTYPE NCLIENTS
chain_yaml() {
	case $1 in
	ec-p256) printf 'subject: {C: NL, O: Example, OU: DBA}\nkey: {type: ec, curve: P-256}\n' ;;
	rsa-3072) printf 'subject: {C: NL, O: Example, OU: DBA}\nkey: {type: rsa, bits: 3072}\n' ;;
	esac
	printf 'validity: {root: 10y, intermediate: 5y, leaf: 397d}\nservers:\n'
	printf '  pg1: {sans: [pg1.example.net, 10.0.0.11]}\n  pg2: {sans: [pg2.example.net]}\nclients:\n'
	i=0
	while [ "$i" -lt "$2" ]; do printf '  - user%04d\n' "$i"; i=$((i + 1)); done
}

# A throwaway state repository with envs/bench ready for `rotate start`.
cli_repo() { # KEYTYPE NCLIENTS DIR
	mkdir -p "$3"
	(
		cd "$3"
		git init -q -b main .
		git config user.name bench
		git config user.email bench@example.invalid
		ROTOR_KEY_FILE="$3.key" "$rotor_cli" init --env bench >/dev/null
		chain_yaml "$1" "$2" >envs/bench/chain.yaml
		git add -A
		git commit -q -m "bench: state"
	)
}

# ---- measuring ----
results="$work/results"
: >"$results"

# run LABEL KEYTYPE LEAVES OUTDIR CMD... -> a line in $results
run() {
	label=$1 kt=$2 n=$3 out=$4
	shift 4
	say "chain.sh: $label $kt, $n client leaves ..."
	if ! /usr/bin/time -f '%e %M %U %S' -o "$work/time" "$@" >"$work/run.log" 2>&1; then
		say "chain.sh: $label $kt FAILED:"
		tail -n 20 "$work/run.log" | sed 's/^/  | /' >&2
		echo "$label $kt $n FAIL FAIL FAIL" >>"$results"
		return 0
	fi
	grep pkibench: "$work/run.log" | sed 's/^/  /' >&2 || true
	set -- $(tail -n 1 "$work/time")
	cpu=$(echo "$3 $4" | awk '{ printf "%.2f", $1 + $2 }')
	echo "$label $kt $n $1 $2 $cpu" >>"$results"
	say "chain.sh: $label $kt: $1 s wall, $cpu s CPU, peak RSS $2 KB"
	check "$out" "$label" "$kt"
}

# Spot check: a client leaf of every run verifies as a client.
check() { # DIR LABEL KEYTYPE
	[ -n "$1" ] || return 0
	c=$(find "$1" -path '*clients*' \( -name 'user0000.crt' -o -name 'user0000.pem' \) | head -n 1)
	root=$(find "$1" \( -name root.crt -o -name root.pem \) | head -n 1)
	cca=$(find "$1" \( -name client-ca.crt -o -name client-ca.pem \) | head -n 1)
	if [ -z "$c" ] || ! openssl verify -CAfile "$root" -untrusted "$cca" -purpose sslclient "$c" >/dev/null 2>&1; then
		say "chain.sh: $2 $3: output does not verify"
		exit 1
	fi
}

for kt in ec-p256 rsa-3072; do
	if [ "$kt" = rsa-3072 ]; then nr=$RSA_ROTOR ns=$RSA_SLOW; else nr=$LEAVES ns=$LEAVES; fi
	if [ -n "$rotor_cli" ]; then
		cli_repo "$kt" "$nr" "$work/repo-$kt"
		# --threads N only when asked for: the CLI's default is every CPU.
		run rotor "$kt" "$nr" "" sh -c 'cd "$1" && ROTOR_KEY_FILE="$1.key" "$2" rotate start --env bench ${3:+--threads "$3"}' \
			sh "$work/repo-$kt" "$rotor_cli" "$([ "$THREADS" -gt 0 ] && echo "$THREADS")"
		(cd "$work/repo-$kt" && git checkout -q "rotor/rotate/bench/gen-0001" 2>/dev/null) &&
			check "$work/repo-$kt/envs/bench/generations" rotor "$kt"
		rm -rf "$work/repo-$kt"
	fi
	if [ -z "$rotor_cli" ] || [ "$kt" = ec-p256 ]; then
		mkdir -p "$work/lib-$kt"
		run rotor-lib "$kt" "$nr" "$work/lib-$kt" "$work/pkibench" "$kt" "$nr" "$THREADS" "$work/secret.key" "$work/lib-$kt"
		rm -rf "$work/lib-$kt"
	fi
	if [ "$kt" = ec-p256 ] && [ "$cpus" -gt 1 ] && [ "$THREADS" != 1 ]; then
		mkdir -p "$work/lib1-$kt"
		run rotor-lib-1thread "$kt" "$nr" "$work/lib1-$kt" "$work/pkibench" "$kt" "$nr" 1 "$work/secret.key" "$work/lib1-$kt"
		rm -rf "$work/lib1-$kt"
	fi
	run openssl "$kt" "$ns" "$work/ossl-$kt" sh "$here/openssl-chain.sh" "$kt" "$ns" "$work/secret.key" "$work/ossl-$kt"
	rm -rf "$work/ossl-$kt"
	if command -v cfssl >/dev/null && command -v cfssljson >/dev/null; then
		run cfssl "$kt" "$ns" "$work/cfssl-$kt" sh "$here/cfssl-chain.sh" "$kt" "$ns" "$work/cfssl-$kt"
		rm -rf "$work/cfssl-$kt"
	else
		say "chain.sh: cfssl not installed (Debian golang-cfssl); skipped"
	fi
done

# ---- the table ----
echo
echo "chain generation: root + 2 intermediates + 2 servers + $LEAVES clients, encrypted keys"
echo "($cpus CPUs, load average $load_start at the start, $(loadavg) at the end: other work on"
echo " the machine slows every row; rotor threads: $THREADS (0 = all); rotor-lib built from $built;"
if [ -n "$rotor_cli" ]; then
	echo " rotor = build/rotor rotate start on a throwaway repository, including its git commit)"
else
	echo " build/rotor has no 'rotate start' yet: the rotor row is the library driver pkibench)"
fi
awk -v target="$LEAVES" '
	function scale(t, n) { return t * (target + 5) / (n + 5) }
	{ tool[NR] = $1; kt[NR] = $2; n[NR] = $3; t[NR] = $4; rss[NR] = $5
	  if ($4 != "FAIL") { s[NR] = scale($4, $3); cpu[NR] = scale($6, $3) }
	  if ($1 == "rotor" && $4 != "FAIL") ref[$2] = s[NR] }
	END {
		for (i = 1; i <= NR; i++) if (!(kt[i] in ref) && tool[i] == "rotor-lib" && t[i] != "FAIL") ref[kt[i]] = s[i]
		printf "%-18s %-9s %6s %8s %13s %7s %12s %9s\n", "tool", "key", "leaves", "wall s", "wall s @" target, "ratio", "CPU s @" target, "peak RSS"
		for (i = 1; i <= NR; i++) {
			if (t[i] == "FAIL") { printf "%-18s %-9s %6d %8s\n", tool[i], kt[i], n[i], "FAILED"; continue }
			ex = n[i] == target ? sprintf("%.2f", s[i]) : sprintf("~%.1f", s[i])
			cx = n[i] == target ? sprintf("%.2f", cpu[i]) : sprintf("~%.1f", cpu[i])
			r = (kt[i] in ref) && ref[kt[i]] > 0 ? sprintf("%.1fx", s[i] / ref[kt[i]]) : "-"
			printf "%-18s %-9s %6d %8.2f %13s %7s %12s %6.1f MB\n", tool[i], kt[i], n[i], t[i], ex, r, cx, rss[i] / 1024
		}
		print "~ = extrapolated linearly per certificate from the leaves actually made;"
		print "ratio = wall time / rotor wall time; CPU = user + system of every process"
	}' "$results"

# The floor, in the same run: N EC P-256 keys and N signatures, one thread, OpenSSL alone.
echo
"$work/pkibench" --floor "$LEAVES" | tee "$work/floor"
awk -v leaves="$LEAVES" 'NR == FNR { if ($1 == "floor:") { fw = $(NF - 5); fc = $(NF - 2) }; next }
	$1 == "rotor" && $2 == "ec-p256" && $3 == leaves && $4 != "FAIL" && fc > 0 {
		printf "rotor rotate start / floor: %.1fx CPU (%.2f s / %.2f s), %.1fx wall (%.2f s / %.2f s)\n", $6 / fc, $6, fc, $4 / fw, $4, fw }' \
	"$work/floor" "$results"

echo
echo "PKCS#8 key encryption, one EC P-256 key (pkibench --pkcs8-probe):"
"$work/pkibench" --pkcs8-probe ec-p256 300 | sed 's/^/  /'
grep -q FAIL "$results" && exit 1
exit 0
