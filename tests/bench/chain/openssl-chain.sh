#!/bin/sh
# openssl-chain.sh KEYTYPE NCLIENTS SECRETFILE OUTDIR
#
# The baseline rotor replaces: the same chain (root, server CA, client CA,
# two servers, NCLIENTS clients, encrypted PKCS#8 keys, SKI/AKI, the same
# extensions) made the way a shell script around the openssl command line
# makes it: genpkey, req, x509 -req per leaf, one after the other.
# KEYTYPE: ec-p256 | rsa-3072.  Random serials come from `x509 -req`.
set -eu
kt=$1 n=$2 pass=$3 out=$4
case $kt in
ec-p256) alg="-algorithm EC -pkeyopt ec_paramgen_curve:P-256" ku="" ;;
rsa-3072) alg="-algorithm RSA -pkeyopt rsa_keygen_bits:3072" ku=",keyEncipherment" ;;
*) echo "openssl-chain.sh: unknown key type $kt" >&2; exit 2 ;;
esac
subj="/C=NL/O=Example/OU=DBA"
mkdir -p "$out/ca" "$out/servers" "$out/clients"
cd "$out"
cat >ext.cnf <<CNF
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ica]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature$ku
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF

genkey() { # FILE
	# shellcheck disable=SC2086
	openssl genpkey $alg -aes-256-cbc -pass "file:$pass" -out "$1" 2>/dev/null
}

sign() { # NAME DIR CA SECTION DAYS EXTFILE
	openssl req -new -key "$2/$1.key" -passin "file:$pass" -subj "$subj/CN=$1" -out "$2/$1.csr"
	openssl x509 -req -in "$2/$1.csr" -CA "ca/$3.crt" -CAkey "ca/$3.key" -passin "file:$pass" \
		-days "$5" -sha256 -extfile "$6" -extensions "$4" -out "$2/$1.crt" 2>/dev/null
	rm -f "$2/$1.csr"
}

genkey ca/root.key
openssl req -new -x509 -key ca/root.key -passin "file:$pass" -subj "$subj/CN=bench root g1" \
	-days 3650 -sha256 -config ext.cnf -extensions root -out ca/root.crt
for ca in server-ca client-ca; do
	genkey "ca/$ca.key"
	openssl req -new -key "ca/$ca.key" -passin "file:$pass" -subj "$subj/CN=bench $ca g1" -out "ca/$ca.csr"
	openssl x509 -req -in "ca/$ca.csr" -CA ca/root.crt -CAkey ca/root.key -passin "file:$pass" \
		-days 1825 -sha256 -extfile ext.cnf -extensions ica -out "ca/$ca.crt" 2>/dev/null
	rm -f "ca/$ca.csr"
done
for s in pg1:IP:10.0.0.11 pg2; do
	name=${s%%:*}
	extra=""
	[ "$s" != "$name" ] && extra=",${s#*:}"
	cat >"servers/$name.cnf" <<CNF
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature$ku
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:$name,DNS:$name.example.net$extra
CNF
	genkey "servers/$name.key"
	sign "$name" servers server-ca server 397 "servers/$name.cnf"
	rm -f "servers/$name.cnf"
done
i=0
while [ "$i" -lt "$n" ]; do
	u=$(printf 'user%04d' "$i")
	genkey "clients/$u.key"
	sign "$u" clients client-ca client 397 ext.cnf
	i=$((i + 1))
done
