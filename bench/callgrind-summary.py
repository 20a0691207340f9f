#!/usr/bin/env python3
"""Reads a callgrind output file and prints the total instructions (Ir) and the number of
calls to functions whose name matches a regular expression.

    callgrind-summary.py FILE REGEX
"""
import re
import sys

path, pattern = sys.argv[1], re.compile(sys.argv[2])
names = {}
total = 0
calls = {}
cfn = None
with open(path, errors="replace") as f:
    for line in f:
        if line.startswith("summary:") or line.startswith("totals:"):
            total = max(total, int(line.split()[1]))
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            kind, ident, name = m.groups()
            if name:
                names[ident] = name
            if kind == "cfn":
                cfn = names.get(ident, ident)
            continue
        if line.startswith("calls=") and cfn is not None:
            if pattern.search(cfn):
                calls[cfn] = calls.get(cfn, 0) + int(line[6:].split()[0])
            cfn = None
print(f"total_Ir={total}")
for name, n in sorted(calls.items()):
    print(f"calls={n} {name}")
