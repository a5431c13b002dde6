#!/usr/bin/env python3
"""Fails unless every crate in the build is GPL-2.0-only compatible.

The library links the Linux kernel (GPL-2.0-only), so each dependency must
offer MIT, BSD, ISC, Zlib or a similar permissive licence (alone, or as one
choice of an OR). Apache-2.0 alone, or "Apache-2.0 AND ...", is refused.
"""
import json
import re
import subprocess
import sys

ALLOWED = {
    "MIT", "MIT-0", "BSD-2-Clause", "BSD-3-Clause", "0BSD", "ISC", "Zlib",
    "Unicode-3.0", "Unicode-DFS-2016", "Unlicense", "CC0-1.0", "BSL-1.0",
    "GPL-2.0", "GPL-2.0-only", "GPL-2.0-or-later", "LGPL-2.1-or-later",
}


def tokens(expr):
    return re.findall(r"\(|\)|[A-Za-z0-9.\-+]+(?: WITH [A-Za-z0-9.\-+]+)?", expr.replace("/", " OR "))


def ok(expr):
    """Evaluates an SPDX expression: OR needs one allowed side, AND both."""
    toks = tokens(expr)
    pos = 0

    def atom():
        nonlocal pos
        t = toks[pos]
        pos += 1
        if t == "(":
            v = disj()
            pos += 1  # ")"
            return v
        return t in ALLOWED

    def conj():
        nonlocal pos
        v = atom()
        while pos < len(toks) and toks[pos] == "AND":
            pos += 1
            v = atom() and v
        return v

    def disj():
        nonlocal pos
        v = conj()
        while pos < len(toks) and toks[pos] == "OR":
            pos += 1
            v = conj() or v
        return v

    return disj()


def main():
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked"], text=True))
    used = {n["id"] for n in meta["resolve"]["nodes"]}
    bad = []
    for pkg in meta["packages"]:
        if pkg["id"] not in used:
            continue
        lic = pkg.get("license") or ""
        if not lic or not ok(lic):
            bad.append(f"{pkg['name']} {pkg['version']}: {lic or 'no licence field'}")
    if bad:
        print("licence check: not compatible with GPL-2.0-only:")
        for b in bad:
            print("  " + b)
        sys.exit(1)
    print(f"licence check: {len(used)} crates, all GPL-2.0-only compatible")


if __name__ == "__main__":
    main()
