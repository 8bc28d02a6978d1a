#!/usr/bin/python3
"""agree.py -- the C validator and the JSON Schemas must agree.

For every fixture file under fixtures/ (good and bad), and a few inputs made
here (too big, too deep), two independent checks must give the same verdict:

  C       build/asan/tests/test_spec --check-batch: for each "KIND<TAB>FILE"
          line, "0<TAB>OK" (valid) or "1<TAB>first diagnostic" (invalid)
  schema  PyYAML's SafeLoader, tightened with the loader rules JSON Schema
          cannot express (one document, no aliases, anchors, tags or
          directives, string keys without repeats, no merge keys, nesting at
          most 64, at most 1 MiB of UTF-8), then jsonschema's Draft 7
          validator with FormatChecker on schemas/KIND.json.

JSON Schema's "integer" also matches 5.0; YAML tells 5 from 5.0, so here
"integer" means a YAML int (not a float, not a boolean).

A few rules only C can check (they compare two values, or look at how a
number was written); the fixtures that exercise them are listed in C_ONLY
and must be refused by C and accepted by the schema, so the list stays
honest.  Good fixtures must pass both checks, bad ones fail both.

Speaks TAP; exits non-zero on any disagreement.  The last test loosens a
schema on purpose and checks that this script notices.
"""
import copy
import json
import os
import subprocess
import sys
import tempfile

import jsonschema
import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKER = os.environ.get("ROTOR_TEST_SPEC", os.path.join(TOP, "build", "asan", "tests", "test_spec"))
KINDS = ("rotor", "chain", "hosts", "rotation", "manifest")
MAX_BYTES = 1 << 20
MAX_DEPTH = 64

# Fixture -> the C-only rule it breaks.
C_ONLY = {
    "fixtures/bad/chain/validity-order.yaml": "leaf validity <= intermediate validity",
    "fixtures/bad/chain/validity-root-order.yaml": "intermediate validity <= root validity",
    "fixtures/bad/chain/renew-before-too-long.yaml": "renew_before < leaf validity",
    "fixtures/bad/rotation/target-not-greater.yaml": "target > generation",
    "fixtures/bad/rotation/target-older.yaml": "target > generation",
    "fixtures/bad/hosts/mode-decimal.yaml": "file modes written in octal",
    "fixtures/bad/hosts/file-path-repeated.yaml": "a file path once per host",
    "fixtures/bad/hosts/external-duplicate.yaml": "external peer names unique",
    "fixtures/bad/hosts/external-ca-file-duplicate.yaml": "external CA files unique",
    "fixtures/bad/hosts/external-server-duplicate.yaml": "external server names unique",
    "fixtures/bad/hosts/address-duplicate.yaml": "addresses unique across hosts",
    "fixtures/bad/hosts/address-duplicate-ipv6.yaml": "addresses unique across hosts",
    "fixtures/bad/hosts/address-duplicate-mapped.yaml": "addresses unique across hosts",
    "fixtures/bad/hosts/address-duplicate-case.yaml": "addresses unique across hosts",
    "fixtures/bad/hosts/address-duplicate-port.yaml": "addresses unique across hosts",
    "fixtures/bad/hosts/address-duplicate-one-port.yaml": "addresses unique across hosts",
    "fixtures/bad/hosts/identity-duplicate-server.yaml": "a server identity on one host",
    "fixtures/bad/hosts/identity-duplicate-default.yaml": "a server identity on one host",
    "fixtures/bad/hosts/roles-files-collide.yaml": "one file written by one role of a host",
    "fixtures/bad/hosts/roles-files-collide-explicit.yaml": "one file written by one role of a host",
    "fixtures/bad/hosts/cockroach-client-identity-not-user.yaml": "a cockroach client's identity is its user",
    "fixtures/bad/manifest/duplicate-cert.yaml": "each cert path once",
    "fixtures/bad/hosts/switch-file-outside-home.yaml": "switch paths inside home",
    "fixtures/bad/hosts/switch-dir-outside-home.yaml": "switch paths inside home",
    "fixtures/bad/hosts/switch-shared-service-file.yaml": "one service file per switch-mode role of a host",
}


class Refused(Exception):
    """The input breaks a loader rule."""


# libyaml's parser when PyYAML has it (the one rotor uses): PyYAML's pure
# Python scanner refuses tabs that YAML allows as separation ("a:\t1"),
# and this test is about the rules, not two parsers' quirks.  The pure
# parser with AGREE_PURE_PYTHON=1.
Base = yaml.SafeLoader
if getattr(yaml, "__with_libyaml__", False) and not os.environ.get("AGREE_PURE_PYTHON"):
    Base = yaml.CSafeLoader


class StrictLoader(Base):
    """SafeLoader that also refuses merge keys, non-string and repeated keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise Refused("merge key at %s" % key_node.start_mark)
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    raise Refused("non-string key %r at %s" % (key, key_node.start_mark))
                if key in seen:
                    raise Refused("duplicate key %r at %s" % (key, key_node.start_mark))
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_strict(data):
    """bytes -> Python data, or Refused / yaml.YAMLError / ValueError."""
    if len(data) > MAX_BYTES:
        raise Refused("larger than %d bytes" % MAX_BYTES)
    text = data.decode("utf-8")  # strict: no UTF-16 guessing, no invalid bytes
    depth = docs = 0
    for ev in yaml.parse(text, Loader=Base):
        if isinstance(ev, yaml.DocumentStartEvent):
            docs += 1
            if docs > 1:
                raise Refused("more than one document")
            if ev.version is not None or ev.tags:
                raise Refused("directive")
        elif isinstance(ev, yaml.AliasEvent):
            raise Refused("alias")
        elif isinstance(ev, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            if ev.anchor is not None:
                raise Refused("anchor")
            if ev.tag is not None:
                raise Refused("tag %s" % ev.tag)
            if isinstance(ev, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise Refused("nesting deeper than %d" % MAX_DEPTH)
        elif isinstance(ev, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.load(text, Loader=StrictLoader)


def yaml_int(_checker, instance):
    return isinstance(instance, int) and not isinstance(instance, bool)


Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    type_checker=jsonschema.Draft7Validator.TYPE_CHECKER.redefine("integer", yaml_int))


def schema_verdict(schema, data):
    """(valid, reason) by the Python side."""
    try:
        doc = load_strict(data)
    except (Refused, yaml.YAMLError, UnicodeDecodeError, ValueError, RecursionError) as e:
        return False, "loader: %s" % str(e).splitlines()[0] if str(e) else type(e).__name__
    v = Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        return False, "schema: %s: %s" % ("/".join(map(str, e.absolute_path)) or "(root)", e.message[:200])
    return True, "valid"


def c_verdicts(items):
    """[(kind, path)] -> [(valid, first line)] by the C side, in one process."""
    lines = []
    for kind, path in items:
        if path.startswith(TOP + os.sep):
            path = os.path.relpath(path, TOP)
        lines.append("%s\t%s\n" % (kind, path))
    r = subprocess.run([CHECKER, "--check-batch"], cwd=TOP, input="".join(lines).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    out = r.stdout.decode("utf-8", "replace").splitlines()
    if r.returncode != 0 or len(out) != len(items):
        raise RuntimeError("test_spec --check-batch exited %d after %d of %d answers: %s" % (
            r.returncode, len(out), len(items), r.stderr.decode("utf-8", "replace")[-600:]))
    res = []
    for line in out:
        code, _, msg = line.partition("\t")
        if code not in ("0", "1"):
            raise RuntimeError("test_spec could not check a file: %s" % msg)
        res.append((code == "0", msg))
    return res


def c_verdict(kind, path):
    """(valid, first line) by the C side for one file."""
    return c_verdicts([(kind, path)])[0]


def kind_of(rel):
    parts = rel.split("/")
    if parts[:2] == ["fixtures", "bad"] and len(parts) == 4 and parts[2] in KINDS:
        return parts[2]
    base = parts[-1][:-5] if parts[-1].endswith(".yaml") else None
    return base if base in KINDS else None


def fixtures():
    found = []
    for d, _, files in os.walk(os.path.join(TOP, "fixtures")):
        for f in files:
            if f.endswith(".yaml"):
                found.append(os.path.relpath(os.path.join(d, f), TOP))
    return sorted(found)


def made_inputs(tmp):
    """Inputs too big to commit: (name, kind, path, expected valid)."""
    cases = []

    def put(name, kind, data):
        p = os.path.join(tmp, name)
        with open(p, "wb") as f:
            f.write(data)
        cases.append(("made/" + name, kind, p, False))

    head = b"version: 1\nsecrets: {key_file: /k}\n"
    pad = b"# " + b"x" * 60 + b"\n"
    big = head + pad * ((MAX_BYTES - len(head)) // len(pad) + 1)
    put("oversized.yaml", "rotor", big[:MAX_BYTES + 1])
    put("deep-flow.yaml", "chain", b"clients: " + b"[" * 10000 + b"]" * 10000 + b"\n")
    put("deep-block.yaml", "hosts", b"".join(b" " * i + b"a:\n" for i in range(200)))
    put("nul.yaml", "rotation", b"phase: stable\0\n")
    put("garbage.yaml", "manifest", bytes(range(256)) * 4)
    # Exactly at the size cap, and valid.
    exact = head + pad * ((MAX_BYTES - len(head)) // len(pad))
    exact += b"#" * (MAX_BYTES - len(exact) - 1) + b"\n"
    p = os.path.join(tmp, "exactly-1mib.yaml")
    with open(p, "wb") as f:
        f.write(exact)
    cases.append(("made/exactly-1mib.yaml", "rotor", p, True))
    return cases


def main():
    if not os.access(CHECKER, os.X_OK):
        print("1..1")
        print("not ok 1 - %s is missing (build it: make build/asan/tests/test_spec)" % CHECKER)
        return 1
    schemas = {}
    for k in KINDS:
        with open(os.path.join(TOP, "schemas", k + ".json")) as f:
            schemas[k] = json.load(f)
        jsonschema.Draft7Validator.check_schema(schemas[k])

    cases = []
    for rel in fixtures():
        cases.append((rel, kind_of(rel), os.path.join(TOP, rel), rel.startswith("fixtures/good/")))
    tmp = tempfile.mkdtemp(prefix="rotor-agree-")
    try:
        cases += made_inputs(tmp)
        print("1..%d" % (len(cases) + 2))
        known = [(kind, path) for _, kind, path, _ in cases if kind is not None]
        c_results = dict(zip([p for _, p in known], c_verdicts(known)))
        n = fails = 0
        for name, kind, path, good in cases:
            n += 1
            if kind is None:
                print("not ok %d - %s: cannot tell which file kind it is" % (n, name))
                fails += 1
                continue
            with open(path, "rb") as f:
                data = f.read()
            c_ok, c_msg = c_results[path]
            s_ok, s_msg = schema_verdict(schemas[kind], data)
            if name in C_ONLY:
                fine = not c_ok and s_ok
                note = "C-only rule (%s)" % C_ONLY[name]
            else:
                fine = c_ok == s_ok == good
                note = "both %s" % ("accept" if c_ok else "refuse")
            if fine:
                print("ok %d - %s %s: %s" % (n, kind, name, note))
            else:
                fails += 1
                print("not ok %d - %s %s: expected %s" % (n, kind, name, "valid" if good else "invalid"))
                print("#   C:      %s %s" % ("accepts" if c_ok else "refuses", c_msg))
                print("#   schema: %s (%s)" % ("accepts" if s_ok else "refuses", s_msg))
                if name in C_ONLY:
                    print("#   listed in C_ONLY: C must refuse and the schema accept")

        # Every C_ONLY entry must still exist.
        n += 1
        missing = [k for k in C_ONLY if not os.path.exists(os.path.join(TOP, k))]
        if missing:
            fails += 1
            print("not ok %d - C_ONLY lists missing fixtures: %s" % (n, ", ".join(missing)))
        else:
            print("ok %d - C_ONLY fixtures exist" % n)

        # The check must be able to fail: loosen a schema and watch it disagree.
        n += 1
        loose = copy.deepcopy(schemas["chain"])
        del loose["properties"]["subject"]["properties"]["C"]["pattern"]
        probe = os.path.join(TOP, "fixtures/bad/chain/country-lowercase.yaml")
        with open(probe, "rb") as f:
            s_ok, _ = schema_verdict(loose, f.read())
        c_ok, _ = c_verdict("chain", probe)
        if s_ok and not c_ok:
            print("ok %d - a loosened schema (chain subject.C without its pattern) is caught" % n)
        else:
            fails += 1
            print("not ok %d - a loosened schema went unnoticed" % n)
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
