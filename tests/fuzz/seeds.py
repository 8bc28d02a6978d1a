#!/usr/bin/python3
"""seeds.py DIR -- write the seed inputs of the fuzz targets that do not read
YAML fixtures: DIR/lock, DIR/pgreply, DIR/remote (the PEM seeds are made by
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

# remote: buffer size byte, then the command's output.
put("remote", "stat", b"\xff1234 81a4 0 0 1700000000\n")
put("remote", "stat-dir", b"\x20" + b"4096 41ed 999 998 -5\n")
put("remote", "stat-big", b"\x40" + b"18446744073709551615 ffffffff 4294967295 4294967295 -9223372036854775808\n")
put("remote", "sudo", b"\x50sudo: a terminal is required to read the password\nsudo: a password is required\n")
put("remote", "nofile", b"\x08stat: cannot statx '/etc/x': No such file or directory\r\n  \n")
