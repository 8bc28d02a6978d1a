#!/bin/sh
# run.sh SECONDS TARGET... -- run each libFuzzer target (build/fuzz/fuzz_TARGET)
# for SECONDS and print one table: target, executions, coverage, crashes.
#
# Seeds: the YAML targets start from every fixture of their kind
# (fixtures/good and fixtures/bad); pem from certificates and keys made
# here with openssl; lock, pgreply, tlsreply, remote, savedplan and sftpreply from tests/fuzz/seeds.py.
# The corpus grows in build/fuzz/corpus/TARGET across runs; a crash,
# leak, timeout or failed check is saved in build/fuzz/crashes/TARGET/
# (turn it into tests/fuzz/regressions/TARGET/NAME: see README).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
secs=$1; shift
fz=build/fuzz
seeds=$fz/seeds
rm -rf "$seeds"
mkdir -p "$seeds" "$fz/logs"

spec_seeds() { # kind file
	mkdir -p "$seeds/$1"
	for f in fixtures/bad/"$1"/*.yaml $(find fixtures/good -name "$2" -type f); do
		[ -f "$f" ] && cp "$f" "$seeds/$1/$(echo "$f" | tr / _)"
	done
}
spec_seeds rotor rotor.yaml
spec_seeds chain chain.yaml
spec_seeds hosts hosts.yaml
spec_seeds rotation rotation.yaml
spec_seeds manifest manifest.yaml
/usr/bin/python3 tests/fuzz/seeds.py "$seeds" || exit 1

# pem: control byte (content kind | side << 2), then the file, then NUL and a certificate.
pem=$seeds/pem; tmp=$fz/pemwork
rm -rf "$tmp"; mkdir -p "$pem" "$tmp"
(
	cd "$tmp" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root.key -out root.crt \
		-subj "/O=fuzz/CN=root" -days 3650 >/dev/null 2>&1 &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout pg1.key -out pg1.csr \
		-subj "/O=fuzz/CN=pg1" >/dev/null 2>&1 &&
	printf 'subjectAltName=DNS:pg1,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ext &&
	openssl x509 -req -in pg1.csr -CA root.crt -CAkey root.key -CAcreateserial -days 397 \
		-extfile ext -out pg1.crt >/dev/null 2>&1 &&
	openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.crt -subj "/CN=rsa" -days 30 \
		>/dev/null 2>&1 &&
	openssl genpkey -algorithm ed25519 -out ed.key >/dev/null 2>&1 &&
	openssl ec -in pg1.key -out pg1-ec.key >/dev/null 2>&1 &&
	openssl req -x509 -key ed.key -out ed.crt -subj "/CN=ed" -days 30 >/dev/null 2>&1 &&
	openssl x509 -in pg1.crt -outform DER -out pg1.der && openssl x509 -in ed.crt -outform DER -out ed.der
) || { echo "fuzz: openssl could not make the PEM seeds" >&2; exit 1; }
{ printf '\000'; cat "$tmp/pg1.crt"; } >"$pem/leaf"
{ printf '\001'; cat "$tmp/pg1.crt" "$tmp/root.crt"; } >"$pem/leaf-chain"
{ printf '\003'; cat "$tmp/root.crt" "$tmp/rsa.crt"; } >"$pem/trust"
{ printf '\007'; cat "$tmp/root.crt" "$tmp/pg1.key"; } >"$pem/trust-with-key"
{ printf '\002'; cat "$tmp/pg1.key"; printf '\000'; cat "$tmp/pg1.crt"; } >"$pem/key-match"
{ printf '\002'; cat "$tmp/pg1-ec.key"; printf '\000'; cat "$tmp/root.crt"; } >"$pem/key-mismatch"
{ printf '\002'; cat "$tmp/rsa.key" "$tmp/rsa.crt"; } >"$pem/key-with-cert"
{ printf '\002'; cat "$tmp/ed.key"; } >"$pem/key-ed25519"
# After the NUL a certificate's DER: key_match_cert_der's walk (and a PEM that is not one).
{ printf '\002'; cat "$tmp/pg1.key"; printf '\000'; cat "$tmp/pg1.der"; } >"$pem/key-match-der"
{ printf '\002'; cat "$tmp/ed.key"; printf '\000'; cat "$tmp/ed.der"; } >"$pem/key-ed25519-der"
rm -rf "$tmp"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

rows="" total_crashes=0
for t in "$@"; do
	corpus=$fz/corpus/$t crashes=$fz/crashes/$t log=$fz/logs/$t.log
	mkdir -p "$corpus" "$crashes"
	before=$(ls "$crashes" | wc -l)
	regress=""   # inputs that once crashed are replayed first, under clang's sanitizers too
	[ -d "tests/fuzz/regressions/$t" ] && regress="tests/fuzz/regressions/$t"
	echo "fuzz: $t for ${secs}s" >&2
	"$fz/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$crashes/" "$corpus" "$seeds/$t" $regress >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -E '^#[0-9]+' "$log" | sed -n 's/.* cov: \([0-9]*\).*/\1/p' | tail -n 1)
	found=$(( $(ls "$crashes" | wc -l) - before ))
	if [ "$rc" -ne 0 ] && [ "$found" -eq 0 ]; then
		found=1   # died without leaving an input: see the log
	fi
	total_crashes=$((total_crashes + found))
	rows="$rows$(printf '%-10s %12s %9s %8s' "$t" "${execs:-?}" "${cov:-?}" "$found")
"
	[ "$found" -eq 0 ] || echo "fuzz: $t: crash, see $log and $crashes/" >&2
done
printf '%-10s %12s %9s %8s\n' target executions coverage crashes
printf '%s' "$rows"
[ "$total_crashes" -eq 0 ]
