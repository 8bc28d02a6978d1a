#!/bin/sh
# cfssl-chain.sh KEYTYPE NCLIENTS OUTDIR
#
# The same chain with cfssl (Debian golang-cfssl): gencert -initca for the
# root, genkey + sign (profile with a CA constraint) for the intermediates,
# gencert per leaf.  cfssl cannot encrypt private keys: its keys are
# written in the clear, so it does less work than rotor and the openssl
# script.  KEYTYPE: ec-p256 | rsa-3072.
set -eu
kt=$1 n=$2 out=$3
case $kt in
ec-p256) key='{"algo":"ecdsa","size":256}' ku='' ;;
rsa-3072) key='{"algo":"rsa","size":3072}' ku=',"key encipherment"' ;;
*) echo "cfssl-chain.sh: unknown key type $kt" >&2; exit 2 ;;
esac
names='[{"C":"NL","O":"Example","OU":"DBA"}]'
mkdir -p "$out/ca" "$out/servers" "$out/clients"
cd "$out"
cat >config.json <<JSON
{"signing":{"default":{"expiry":"9528h"},"profiles":{
 "intermediate":{"expiry":"43800h","usages":["cert sign","crl sign"],
  "ca_constraint":{"is_ca":true,"max_path_len":0,"max_path_len_zero":true}},
 "server":{"expiry":"9528h","usages":["digital signature"$ku,"server auth"]},
 "client":{"expiry":"9528h","usages":["digital signature"$ku,"client auth"]}}}}
JSON
printf '{"CN":"bench root g1","key":%s,"names":%s,"ca":{"expiry":"87600h"}}' "$key" "$names" |
	cfssl gencert -initca - 2>/dev/null | cfssljson -bare ca/root
for ca in server-ca client-ca; do
	printf '{"CN":"bench %s g1","key":%s,"names":%s}' "$ca" "$key" "$names" |
		cfssl genkey - 2>/dev/null | cfssljson -bare "ca/$ca"
	cfssl sign -ca ca/root.pem -ca-key ca/root-key.pem -config config.json -profile intermediate \
		"ca/$ca.csr" 2>/dev/null | cfssljson -bare "ca/$ca"
done
for s in pg1:10.0.0.11 pg2; do
	name=${s%%:*}
	hosts="\"$name\",\"$name.example.net\""
	[ "$s" != "$name" ] && hosts="$hosts,\"${s#*:}\""
	printf '{"CN":"%s","hosts":[%s],"key":%s,"names":%s}' "$name" "$hosts" "$key" "$names" |
		cfssl gencert -ca ca/server-ca.pem -ca-key ca/server-ca-key.pem -config config.json \
			-profile server - 2>/dev/null | cfssljson -bare "servers/$name"
done
i=0
while [ "$i" -lt "$n" ]; do
	u=$(printf 'user%04d' "$i")
	printf '{"CN":"%s","key":%s,"names":%s}' "$u" "$key" "$names" |
		cfssl gencert -ca ca/client-ca.pem -ca-key ca/client-ca-key.pem -config config.json \
			-profile client - 2>/dev/null | cfssljson -bare "clients/$u"
	i=$((i + 1))
done
rm -f ca/*.csr servers/*.csr clients/*.csr
