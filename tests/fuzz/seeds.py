#!/usr/bin/python3
"""seeds.py DIR -- write the seed inputs of the fuzz targets that do not read
YAML fixtures: DIR/lock, DIR/pgreply, DIR/remote, DIR/savedplan, DIR/sftpreply, DIR/tlsreply (the PEM seeds are made by
run.sh with openssl; fuzz_pem's input format is in tests/fuzz/fuzz_pem.c).
"""
import os
import struct
import sys

top = sys.argv[1]


def put(target, name, data):
    d = os.path.join(top, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# lock.json as gitstatus writes it, and a few it must refuse.
put("lock", "full", b'{\n  "holder": "alice@host1",\n  "pid": 4242,\n  "time": "2026-11-23T12:00:00Z",\n'
    b'  "command": "rotor apply --env poc",\n  "desired": "0123456789abcdef0123456789abcdef01234567",\n'
    b'  "env": "poc",\n  "nonce": "00112233aabbccdd"\n}\n')
put("lock", "null-desired", b'{"holder": "b\\u00e9@h", "pid": 1, "time": "t", "command": "c", "desired": null}')
put("lock", "nested", b'{"holder": "h", "pid": 1.5, "time": ["t"], "command": {"c": 1}}')
put("lock", "duplicate", b'{"holder": "h", "holder": "i", "pid": 1, "time": "t", "command": "c"}')
put("lock", "not-json", b'{"holder": "h", "pid": 99999999999999999999999')
put("lock", "until", b'{\n  "holder": "alice@host1",\n  "pid": 4242,\n  "time": "2026-11-23T12:00:00Z",\n'
    b'  "until": "2026-11-23T12:30:00Z",\n  "command": "rotor apply --env poc",\n  "desired": null,\n'
    b'  "env": "poc",\n  "nonce": "00112233aabbccdd"\n}\n')
put("lock", "bad-until", b'{"holder": "h", "pid": 1, "time": "t", "until": "2026-13-45T99:00:00Z", "command": "c"}')


# savedplan: a plan as `rotor plan --out` writes it, and a few it must refuse.
SAVED_PLAN = (b'{"format":"rotor-saved-plan","version":1,"env":"poc",'
              b'"commit":"0123456789abcdef0123456789abcdef01234567",'
              b'"desired_from":{"ref":"refs/remotes/origin/main","how":"fetched"},"replace_unknown":false,'
              b'"probed":true,"hosts":[{"name":"host1","address":"127.0.0.1","reachable":true,'
              b'"files":[{"path":"/srv/postgres/certs/server.crt","present":true,'
              b'"sha256":"' + b"ab" * 32 + b'"},{"path":"/srv/postgres/certs/root.crt","present":false,'
              b'"sha256":null}],"served":[{"port":5432,"leaf":"' + b":".join([b"AB"] * 32) + b'"}]}],'
              b'"steps":[{"from":"stable","to":"trust","changes":[{"host":"host1",'
              b'"path":"/srv/postgres/certs/root.crt","action":"create","from":null,"to":"roots 1+2",'
              b'"mode":"0644"}],"broken_pairs":[],"gates_not_ready":[]}]}\n')
put("savedplan", "plan", SAVED_PLAN)
put("savedplan", "no-steps", SAVED_PLAN.replace(b'"steps":[{', b'"stepz":[{'))
put("savedplan", "bad-port", SAVED_PLAN.replace(b'"port":5432', b'"port":65536'))
put("savedplan", "duplicate", SAVED_PLAN.replace(b'"env":"poc"', b'"env":"poc","env":"prod"'))
put("savedplan", "cut", SAVED_PLAN[:200])


def msg(t, body):
    return t + struct.pack(">I", 4 + len(body)) + body


# pgreply: SSLRequest answer, flags, then the first message after StartupMessage.
put("pgreply", "auth-ok", b"S\x00" + msg(b"R", struct.pack(">I", 0)))
put("pgreply", "auth-sasl", b"S\x00" + msg(b"R", struct.pack(">I", 10) + b"SCRAM-SHA-256\x00\x00"))
put("pgreply", "error", b"S\x00" + msg(b"E", b"SFATAL\x00VFATAL\x00C28000\x00Mno pg_hba.conf entry for host"
                                        b" \"127.0.0.1\", user \"app\"\x00Fauth.c\x00L543\x00\x00"))
put("pgreply", "error-cut", b"S\x00" + msg(b"E", b"C42P01\x00Mhalf")[:-2])
put("pgreply", "no-ssl", b"N\x00")
put("pgreply", "closed", b"\x00\x01")
put("pgreply", "after-s", b"S\x02" + msg(b"N", b"notice\x00"))

# sftpreply: how many NAME answers (0-3), then an ATTRS body and each answer as a 2-byte length
# and the bytes, then SSH strings (fuzz_sftpreply.c).
def part(b):
    return struct.pack(">H", len(b)) + b
def sstr(b):
    return struct.pack(">I", len(b)) + b
ATTRS = struct.pack(">IQIIIII", 0xF, 1234, 0, 26, 0o100644, 1700000000, 1700000001)
NAME = struct.pack(">I", 2) + sstr(b"a.crt") + sstr(b"-rw-r--r-- a.crt") + struct.pack(">II", 0x4, 0o100600) + \
    sstr(b"..") + sstr(b"drwxr-xr-x ..") + struct.pack(">I", 0)
put("sftpreply", "attrs", b"\x00" + part(ATTRS))
put("sftpreply", "names", b"\x02" + part(ATTRS) + part(NAME) + part(NAME[:-3]) + sstr(b"handle") + sstr(b""))
put("sftpreply", "extended", b"\x01" + part(struct.pack(">II", 0x80000004, 0o40755)[:8] + struct.pack(">I", 1) + sstr(b"x@y") + sstr(b"z")) + part(NAME))

# remote: buffer size byte, then the command's output.
put("remote", "stat", b"\xff1234 81a4 0 0 1700000000\n")
put("remote", "stat-dir", b"\x20" + b"4096 41ed 999 998 -5\n")
put("remote", "stat-big", b"\x40" + b"18446744073709551615 ffffffff 4294967295 4294967295 -9223372036854775808\n")
put("remote", "sudo", b"\x50sudo: a terminal is required to read the password\nsudo: a password is required\n")
put("remote", "sudo-read", b"\x10" + b"2049:1234:1796089737.370378119 3 81a4 0 26 1796089737\nab\n"
    b"2049:1234:1796089737.370378119 3 81a4 0 26 1796089737\n")
put("remote", "sudo-link", b"\x10" + b"2049:77:1796089737.1 11 a1ff 0 0 1796089737\n")
put("remote", "nofile", b"\x08stat: cannot statx '/etc/x': No such file or directory\r\n  \n")


# tlsreply: flags, trust bundle length and PEM, then what a server sends
# (fuzz_tlsreply.c).  The server is Python's ssl module over memory BIOs
# with certificates made by openssl: a TLS 1.2 flight (ServerHello,
# Certificate, ServerKeyExchange, ServerHelloDone: the probe parses the
# chain, then the key exchange fails against its own random), a TLS 1.3
# one, fatal alerts, and PostgreSQL's answers to SSLRequest before them.
def tls_seeds():
    import ssl
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        def sh(*args):
            subprocess.run(args, cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", "root.key", "-out", "root.crt", "-subj", "/O=fuzz/CN=root", "-days", "3650",
           "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/O=fuzz/CN=pg1")
        with open(os.path.join(d, "ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        sh("openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "root.crt", "-CAkey", "root.key",
           "-CAcreateserial", "-days", "397", "-extfile", "ext", "-out", "leaf.crt")
        with open(os.path.join(d, "chain.crt"), "wb") as f:
            f.write(open(os.path.join(d, "leaf.crt"), "rb").read() + open(os.path.join(d, "root.crt"), "rb").read())
        root = open(os.path.join(d, "root.crt"), "rb").read()

        def flight(version):
            srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            srv.load_cert_chain(os.path.join(d, "chain.crt"), os.path.join(d, "leaf.key"))
            srv.minimum_version = srv.maximum_version = version
            cli = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            cli.check_hostname = False
            cli.verify_mode = ssl.CERT_NONE
            ci, co, si, so = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
            c = cli.wrap_bio(ci, co, server_side=False)
            s = srv.wrap_bio(si, so, server_side=True)
            try:
                c.do_handshake()
            except ssl.SSLWantReadError:
                pass
            si.write(co.read())
            try:
                s.do_handshake()
            except ssl.SSLWantReadError:
                pass
            return so.read()

        def tls(name, flags, server, trust=root):
            put("tlsreply", name, bytes([flags]) + struct.pack(">H", len(trust)) + trust + server)

        tls12, tls13 = flight(ssl.TLSVersion.TLSv1_2), flight(ssl.TLSVersion.TLSv1_3)
        tls("tls12", 0, tls12)
        tls("tls12-name-fp", 6, tls12)
        tls("tls12-pg", 1, b"S" + tls12)
        tls("tls12-cut", 4, tls12[: len(tls12) // 2])
        tls("tls13", 4, tls13)
        tls("tls13-pg", 7, b"S" + tls13)
        tls("alert-unknown-ca", 1, b"S\x15\x03\x03\x00\x02\x02\x30")
        tls("alert-handshake", 0, b"\x15\x03\x01\x00\x02\x02\x28")
        tls("pg-no-ssl", 1, b"N")
        tls("pg-error", 1, b"E" + struct.pack(">I", 10) + b"SFATAL\x00\x00")
        tls("closed", 0, b"")
        tls("bad-trust", 0, tls12, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


tls_seeds()
