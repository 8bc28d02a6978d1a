#!/usr/bin/python3
"""observe_check.py -- assertions on `rotor observe --json` for tests/e2e/faults.sh.

  observe_check.py FILE fits STEP [HOST...]   every named host (default: all) fits STEP
  observe_check.py FILE sound                 every host reachable; every managed file
                                              present, readable and parsed (no problem),
                                              holding at least one certificate of a known
                                              generation, every key matching its leaf
  observe_check.py FILE summary               one line per host: name, fits, problems

Exit 0 when the assertion holds, 1 (with the reason on stdout) when not.
"""
import json
import sys


def host_problems(h):
    out = []
    if not h["reachable"]:
        out.append("unreachable: %s" % h["error"])
        return out
    for f in h["files"]:
        if not f["present"]:
            out.append("%s missing" % f["path"])
        elif f["problem"]:
            out.append("%s: %s" % (f["path"], f["problem"]))
        elif f["content"] == "key":
            if f["key"] != "matches":
                out.append("%s: key %s" % (f["path"], f["key"]))
        elif not f["certificates"]:
            out.append("%s: no certificate" % f["path"])
        else:
            for c in f["certificates"]:
                if c["generation"] is None:
                    out.append("%s: unknown certificate %s" % (f["path"], c["subject"]))
    return out


def main():
    d = json.load(open(sys.argv[1]))
    what = sys.argv[2]
    hosts = d["hosts"]
    if what == "fits":
        step, names = sys.argv[3], sys.argv[4:]
        bad = [h["name"] + " fits " + (",".join(h["fits"]) or "nothing")
               for h in hosts if (not names or h["name"] in names) and step not in h["fits"]]
        if names and len([h for h in hosts if h["name"] in names]) != len(names):
            bad.append("hosts missing from the observation")
        if bad:
            print("not at %s: %s" % (step, "; ".join(bad)))
            return 1
        return 0
    if what == "sound":
        bad = ["%s: %s" % (h["name"], p) for h in hosts for p in host_problems(h)]
        if bad:
            print("\n".join(bad))
            return 1
        return 0
    if what == "summary":
        for h in hosts:
            print("%s fits [%s] %s" % (h["name"], ",".join(h["fits"]), "; ".join(host_problems(h))))
        return 0
    print("unknown check " + what)
    return 2


if __name__ == "__main__":
    sys.exit(main())
