#!/usr/bin/env python3
"""Fails if, inside any crate of the workspace, a top-level module uses another that uses it
back (issue 16: "no crate or top-level module imports one that imports it back"). A module is
a file or directory under `crates/*/src` (besides lib.rs); "uses" means a `crate::NAME` path
in its code (comments are left out, so intra-doc links do not count). Cargo already refuses
cycles between crates.

Usage: scripts/module_cycles.py   (exit 1 and one line per cycle if there are any)
"""
import os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'crates')
found = []
for crate in sorted(os.listdir(root)):
    src = os.path.join(root, crate, 'src')
    if not os.path.isdir(src):
        continue
    mods = {}
    for entry in os.listdir(src):
        if entry in ('lib.rs', 'main.rs'):
            continue
        name = entry[:-3] if entry.endswith('.rs') else entry
        path = os.path.join(src, entry)
        files = [path] if os.path.isfile(path) else [
            os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith('.rs')]
        mods.setdefault(name, []).extend(files)
    uses = {m: set() for m in mods}
    for m, files in mods.items():
        for f in files:
            code = re.sub(r'//.*', '', open(f).read())
            names = re.findall(r'crate::(\w+)', code)
            for group in re.findall(r'crate::\{([^}]*)\}', code):
                names += re.findall(r'(\w+)', group)
            uses[m] |= {n for n in names if n in mods and n != m}
    for a in sorted(uses):
        for b in sorted(uses[a]):
            if a < b and a in uses[b]:
                found.append(f'{crate}: {a} <-> {b}')
for line in found:
    print(f'module cycle: {line}', file=sys.stderr)
sys.exit(1 if found else 0)
