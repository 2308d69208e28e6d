#!/usr/bin/env python3
"""The code's shape, checked: no import cycle between modules (Rust: files under server/src,
and the top-level modules; TypeScript: files under extension/src), no file past 600 lines and no
function past 80 lines in server/src or extension/src, except where ALLOWED names a reason.

    python3 tests/lint/shape.py          # exit 1 with the findings, 0 when clean
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_FILE, MAX_FN = 600, 80
# path or path::fn → why it may be longer
ALLOWED = {}


def rust_modules():
    """file → module path (`engine::create::steps`) for every .rs file under server/src."""
    base = os.path.join(ROOT, "server", "src")
    out = {}
    for d, _, files in os.walk(base):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(d, f), base)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            out[os.path.join(d, f)] = rel
    return out


def strip_comments(text):
    """Rust (or TypeScript) source with comments removed and string/char literals emptied."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i:])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"' or c == "`":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", text[i:])):
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_test_modules(text):
    """Drops `#[cfg(test)] mod NAME { … }` blocks (tests may use anything)."""
    while (m := re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)):
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        text = text[: m.start()] + text[j:]
    return text


def expand_use(tree):
    """`a::{b, c::{d}}` → ['a::b', 'a::c::d']."""
    tree = tree.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", tree, re.S)
    if not m:
        return [tree]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    return [p for part in parts if part.strip() for p in expand_use(prefix + part.strip())]


def rust_edges(modules):
    known = {tuple(m) for m in modules.values()}
    edges = {}
    for path, mod in modules.items():
        text = without_test_modules(strip_comments(open(path).read()))
        refs = []
        for u in re.findall(r"\buse\s+([^;]+);", text):
            refs += expand_use(u)
        refs += re.findall(r"\b((?:crate|super)(?:::\w+)+)", text)
        targets = set()
        for r in refs:
            segs = [s for s in re.split(r"\s*::\s*", r.split(" as ")[0].strip()) if s]
            if segs[0] == "crate":
                cur, segs = [], segs[1:]
            elif segs[0] == "super":
                cur = list(mod)
                while segs and segs[0] == "super":
                    cur, segs = cur[:-1], segs[1:]
            else:
                continue
            # the longest prefix that is a module file
            best = None
            for i in range(len(segs) + 1):
                if tuple(cur + segs[:i]) in known:
                    best = tuple(cur + segs[:i])
            if best is not None and best != tuple(mod) and tuple(mod[: len(best)]) != best:
                targets.add(best)
        edges[tuple(mod)] = targets
    return edges


def cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def ts_edges():
    base = os.path.join(ROOT, "extension", "src")
    edges = {}
    for f in os.listdir(base):
        if f.endswith(".ts"):
            text = open(os.path.join(base, f)).read()
            deps = re.findall(r"^import\s+(?!type\b)[^;]*?from\s+'\./([\w.]+)'", text, re.M)
            edges[f[:-3]] = {d for d in deps}
    return edges


def long_rust_fns(path):
    lines = strip_comments(open(path).read()).split("\n")
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)", line)
        if not m:
            continue
        depth, started = 0, False
        for j in range(i, len(lines)):
            code = lines[j]
            if not started and ";" in code and "{" not in code:
                break
            depth += code.count("{") - code.count("}")
            started = started or "{" in code
            if started and depth <= 0:
                if j - i + 1 > MAX_FN:
                    out.append((m.group(1), j - i + 1))
                break
    return out


def long_ts_fns(path):
    """Functions and methods (declarations, class members, top-level arrow constants) past MAX_FN."""
    lines = strip_comments(open(path).read()).split("\n")
    head = re.compile(
        r"^(?:export\s+)?(?:async\s+)?function\s+(\w+)"
        r"|^\s{2}(?:(?:private|public|static|readonly|async|get|set)\s+)*(\w+)\s*(?:<[^>]*>)?\(.*\{\s*$"
        r"|^(?:export\s+)?const\s+(\w+)\s*=.*=>\s*\{\s*$"
    )
    out = []
    for i, line in enumerate(lines):
        m = head.match(line)
        if not m or line.strip().startswith(("if", "for", "while", "switch", "return")):
            continue
        name = next(g for g in m.groups() if g)
        depth, started = 0, False
        for j in range(i, len(lines)):
            depth += lines[j].count("{") - lines[j].count("}")
            started = started or "{" in lines[j]
            if started and depth <= 0:
                if j - i + 1 > MAX_FN:
                    out.append((name, j - i + 1))
                break
    return out


def main():
    problems = []
    modules = rust_modules()
    edges = rust_edges(modules)
    for c in cycles(edges):
        problems.append("import cycle (server/src files): " + " ↔ ".join("::".join(m) or "crate" for m in c))
    top = {}
    for a, bs in edges.items():
        for b in bs:
            if a[:1] and b[:1] and a[:1] != b[:1]:
                top.setdefault(a[:1], set()).add(b[:1])
    for c in cycles(top):
        problems.append("import cycle (top-level modules): " + " ↔ ".join("::".join(m) for m in c))
    for c in cycles(ts_edges()):
        problems.append("import cycle (extension/src): " + " ↔ ".join(c))
    for d in ["server/src", "extension/src"]:
        for dirpath, _, files in os.walk(os.path.join(ROOT, d)):
            for f in files:
                p = os.path.join(dirpath, f)
                rel = os.path.relpath(p, ROOT)
                if not (f.endswith(".rs") or f.endswith(".ts")) or f.endswith(".generated.ts"):
                    continue
                n = sum(1 for _ in open(p))
                if n > MAX_FILE and rel not in ALLOWED:
                    problems.append(f"{rel}: {n} lines (limit {MAX_FILE})")
                if f.endswith((".rs", ".ts")):
                    for name, length in (long_rust_fns(p) if f.endswith(".rs") else long_ts_fns(p)):
                        if f"{rel}::{name}" not in ALLOWED:
                            problems.append(f"{rel}: fn {name} is {length} lines (limit {MAX_FN})")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
