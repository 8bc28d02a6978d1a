#!/bin/sh
# openssl-chain.sh KEYTYPE NCLIENTS SECRETFILE OUTDIR
#
# The baseline rotor replaces: the same chain (root, server CA, client CA,
# two servers, NCLIENTS clients, encrypted PKCS#8 keys, SKI/AKI, the same
# extensions) made the way a shell script around the openssl command line
# makes it: genpkey, req, x509 -req per leaf, one after the other.
# KEYTYPE: ec-p256 | rsa-3072.  Random serials come from `x509 -req`.  The
# extensions: tests/openssl-ext.cnf (KU and SAN from the environment).
set -eu
kt=$1 n=$2 pass=$3 out=$4
ext=$(cd "$(dirname "$0")/../.." && pwd)/openssl-ext.cnf
case $kt in
ec-p256) alg="-algorithm EC -pkeyopt ec_paramgen_curve:P-256" KU="" ;;
rsa-3072) alg="-algorithm RSA -pkeyopt rsa_keygen_bits:3072" KU=",keyEncipherment" ;;
*) echo "openssl-chain.sh: unknown key type $kt" >&2; exit 2 ;;
esac
subj="/C=NL/O=Example/OU=DBA"
mkdir -p "$out/ca" "$out/servers" "$out/clients"
cd "$out"
SAN=DNS:unused
export KU SAN

genkey() { # FILE
	# shellcheck disable=SC2086
	openssl genpkey $alg -aes-256-cbc -pass "file:$pass" -out "$1" 2>/dev/null
}

sign() { # NAME DIR CA SECTION DAYS
	openssl req -new -key "$2/$1.key" -passin "file:$pass" -subj "$subj/CN=$1" -out "$2/$1.csr"
	openssl x509 -req -in "$2/$1.csr" -CA "ca/$3.crt" -CAkey "ca/$3.key" -passin "file:$pass" \
		-days "$5" -sha256 -extfile "$ext" -extensions "$4" -out "$2/$1.crt" 2>/dev/null
	rm -f "$2/$1.csr"
}

genkey ca/root.key
openssl req -new -x509 -key ca/root.key -passin "file:$pass" -subj "$subj/CN=bench root g1" \
	-days 3650 -sha256 -config "$ext" -extensions root -out ca/root.crt
for ca in server-ca client-ca; do
	genkey "ca/$ca.key"
	openssl req -new -key "ca/$ca.key" -passin "file:$pass" -subj "$subj/CN=bench $ca g1" -out "ca/$ca.csr"
	openssl x509 -req -in "ca/$ca.csr" -CA ca/root.crt -CAkey ca/root.key -passin "file:$pass" \
		-days 1825 -sha256 -extfile "$ext" -extensions ca -out "ca/$ca.crt" 2>/dev/null
	rm -f "ca/$ca.csr"
done
for s in pg1:IP:10.0.0.11 pg2; do
	name=${s%%:*}
	SAN="DNS:$name,DNS:$name.example.net"
	[ "$s" != "$name" ] && SAN="$SAN,${s#*:}"
	genkey "servers/$name.key"
	sign "$name" servers server-ca server 397
done
i=0
while [ "$i" -lt "$n" ]; do
	u=$(printf 'user%04d' "$i")
	genkey "clients/$u.key"
	sign "$u" clients client-ca client 397
	i=$((i + 1))
done
