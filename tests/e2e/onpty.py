#!/usr/bin/python3
"""onpty.py OUT CMD... -- run CMD with its stderr on a pseudo-terminal
(stdin from /dev/null, stdout inherited) and write every byte CMD wrote
to that terminal, unchanged, into OUT; exit with CMD's status."""
import os
import pty
import subprocess
import sys

master, slave = pty.openpty()
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stderr=slave)
os.close(slave)
got = bytearray()
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:  # EIO: the child closed the terminal
        break
    if not chunk:
        break
    got += chunk
with open(sys.argv[1], "wb") as f:
    f.write(got)
sys.exit(p.wait())
