#!/usr/bin/python3
"""arch.py -- the dependency rules of docs/ARCHITECTURE.md, checked on the
tree: who may include whom, which libraries each layer may use, and no
include cycles.  Prints TAP.  With --self-test it first plants each kind
of violation in a scratch copy of the tree and checks that it is caught.

Layers, lowest first (a folder may include its own files and those of
the folders listed for it; system headers aside):

  common/             -
  gitops/             common
  reconcile/tls/      common
  reconcile/remote/   common
  reconcile/services/ common, reconcile/tls
  reconcile/spec/     common, reconcile/services, reconcile/tls
  reconcile/pki/      common, reconcile/spec, reconcile/services, reconcile/tls
  reconcile/engine/   common, gitops, reconcile/*
  cmd/                everything above
  tests/              everything

Libraries: only gitops/ includes <git2.h>; only reconcile/remote/
includes <libssh2*.h>; gitops/ and common/ include no <openssl/...>,
<libssh2*.h> or <yaml.h>; only reconcile/spec/ includes <yaml.h>.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ALLOWED = {
    "common": set(),
    "gitops": {"common"},
    "reconcile/tls": {"common"},
    "reconcile/remote": {"common"},
    "reconcile/services": {"common", "reconcile/tls"},
    "reconcile/spec": {"common", "reconcile/services", "reconcile/tls"},
    "reconcile/pki": {"common", "reconcile/spec", "reconcile/services", "reconcile/tls"},
    "reconcile/engine": {"common", "gitops", "reconcile/tls", "reconcile/remote", "reconcile/services",
                         "reconcile/spec", "reconcile/pki"},
    "cmd": {"common", "gitops", "reconcile/tls", "reconcile/remote", "reconcile/services", "reconcile/spec",
            "reconcile/pki", "reconcile/engine"},
}
# <system header> prefixes a layer may not include, and the only layers that may.
LIBS = [
    ("git2", {"gitops"}),
    ("libssh2", {"reconcile/remote"}),
    ("yaml.h", {"reconcile/spec"}),
    ("openssl/", {"reconcile/tls", "reconcile/pki", "reconcile/spec", "reconcile/services", "reconcile/engine",
                  "reconcile/remote", "cmd"}),
]
INC = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def layer_of(path):
    for lay in sorted(ALLOWED, key=len, reverse=True):
        if path == lay or path.startswith(lay + "/"):
            return lay
    return None


def sources(top):
    out = []
    for d in ["common", "gitops", "reconcile", "cmd"]:
        for root, _, files in os.walk(os.path.join(top, d)):
            for f in files:
                if f.endswith((".c", ".h")):
                    out.append(os.path.relpath(os.path.join(root, f), top))
    return sorted(out)


def check(top):
    """Returns a list of (rule, [problems])."""
    files = sources(top)
    graph = {}
    layering, libs, unknown = [], [], []
    for f in files:
        lay = layer_of(f)
        if lay is None:
            unknown.append("%s: in no layer of docs/ARCHITECTURE.md" % f)
            continue
        text = open(os.path.join(top, f), encoding="utf-8", errors="replace").read()
        graph[f] = []
        for kind, name in INC.findall(text):
            if kind == '"':
                if not os.path.exists(os.path.join(top, name)):
                    layering.append("%s: includes \"%s\", which is not a path from the top of the tree" % (f, name))
                    continue
                graph[f].append(name)
                other = layer_of(name)
                if other != lay and other not in ALLOWED[lay]:
                    layering.append("%s (%s) includes %s (%s)" % (f, lay, name, other))
            else:
                for prefix, who in LIBS:
                    if name.startswith(prefix) and lay not in who:
                        libs.append("%s (%s) includes <%s>" % (f, lay, name))
    # Include cycles: depth-first search over the file graph.
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt in graph and not state.get(nxt):
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [])
    return [("every source file is in a layer", unknown),
            ("includes follow the layers", layering),
            ("libraries stay in their layers (git2 in gitops, libssh2 in remote, yaml in spec)", libs),
            ("no include cycles", cycles)]


def report(results, n0=0):
    n = n0
    bad = 0
    for name, problems in results:
        n += 1
        if problems:
            bad += 1
            print("not ok %d - %s" % (n, name))
            for p in problems[:20]:
                print("# " + p)
        else:
            print("ok %d - %s" % (n, name))
    return n, bad


def self_test(top, n0):
    """Plant one violation of each rule in a copy; each must be caught."""
    plants = [
        ("gitops/gitrepo.c", '#include "reconcile/spec/spec.h"\n', "includes follow the layers"),
        ("reconcile/engine/plan.c", "#include <git2.h>\n", "libraries stay"),
        ("reconcile/spec/diag.h", '#include "reconcile/spec/spec.h"\n', "no include cycles"),
        ("reconcile/tls/verify.c", '#include "reconcile/pki/pki.h"\n', "includes follow the layers"),
    ]
    n = n0
    bad = 0
    for path, line, rule in plants:
        n += 1
        tmp = tempfile.mkdtemp()
        try:
            for d in ["common", "gitops", "reconcile", "cmd"]:
                shutil.copytree(os.path.join(top, d), os.path.join(tmp, d))
            with open(os.path.join(tmp, path), "a") as f:
                f.write(line)
            caught = any(name.startswith(rule) and problems for name, problems in check(tmp))
        finally:
            shutil.rmtree(tmp)
        if caught:
            print("ok %d - self-test: %s in %s is caught" % (n, line.strip(), path))
        else:
            bad += 1
            print("not ok %d - self-test: %s in %s is NOT caught" % (n, line.strip(), path))
    return n, bad


def main():
    top = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    n, bad = report(check(top))
    if "--self-test" in sys.argv[1:]:
        n, bad2 = self_test(top, n)
        bad += bad2
    print("1..%d" % n)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
