#!/usr/bin/env python3
"""Writes the race's packages: spec files and their payload trees, from a seeded generator.

    race_specs.py OUTDIR [--base N] [--base-mib M] [--tools N] [--tools-mib M] [--seed S]

OUTDIR/specs/*.spec are built by scripts/mkrepo.sh; each spec's %install copies
OUTDIR/content/<name>/. The same arguments give the same bytes on any machine.

Packages: race-filesystem, race-release (os-release), race-base-01..N (M MiB each, a tree of
Requires), race-base (requires them all, like a pattern), race-tool-1..N (the extension;
race-tool-1 requires the other tools but the last, and some base packages).

File contents mimic a distribution's mix, so compression costs what it does on real packages:
text (documentation, configuration, scripts; zstd ~3x), machine code (~3x) and already
compressed data (incompressible), with sizes from 512 B to 1.5 MiB on a log scale.
"""

import argparse
import math
import os
import random

POOL = 24 << 20  # bytes of generated text and of generated code, sliced into files


def text_pool(rng):
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    lw = [1.0 / (i + 1) ** 0.8 for i in range(len(letters))]
    vocab = [
        "".join(rng.choices(letters, lw, k=rng.randint(2, 11))) for _ in range(6000)
    ]
    weights = [1.0 / (r + 1) for r in range(len(vocab))]
    seps = [" "] * 12 + [", ", ". ", "\n", "\n    ", "_", "(", ") ", " = ", "/"]
    out = bytearray()
    while len(out) < POOL:
        words = rng.choices(vocab, weights, k=4096)
        s = rng.choices(seps, k=4096)
        out += "".join(w + x for w, x in zip(words, s)).encode()
    return bytes(out[:POOL])


def code_pool(rng):
    # A few hundred "instructions" of 1-7 bytes in Zipf order, with short literal runs
    # (addresses, constants) and zero padding, like the text section of an ELF file.
    ops = [rng.randbytes(rng.randint(1, 7)) for _ in range(400)]
    weights = [1.0 / (r + 1) for r in range(len(ops))]
    out = bytearray()
    while len(out) < POOL:
        for op in rng.choices(ops, weights, k=8192):
            out += op
        out += rng.randbytes(rng.randint(0, 64))
        out += bytes(rng.choice((0, 0, 0, 8, 16, 32)))
    return bytes(out[:POOL])


def file_size(rng):
    return int(math.exp(rng.uniform(math.log(512), math.log(1.5 * (1 << 20)))))


def slice_of(pool, rng, n):
    off = rng.randrange(len(pool))
    out = pool[off : off + n]
    while len(out) < n:
        out += pool[: n - len(out)]
    return out


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def fill(root, name, budget, rng, pools, opt=False):
    """Writes about `budget` bytes of files for package `name` under `root`; returns the
    %files lines."""
    text, code = pools
    lib = f"usr/lib64/{name}"
    share = f"usr/share/{name}"
    top = f"opt/{name}" if opt else None
    done, i = 0, 0
    while done < budget:
        n = min(file_size(rng), budget - done) or 1
        kind = rng.random()
        sub = f"d{rng.randrange(8)}"
        if kind < 0.40:
            path, data, mode = f"{lib}/{sub}/m{i}.so", slice_of(code, rng, n), 0o755
        elif kind < 0.85:
            ext = rng.choice(("txt", "xml", "py", "conf", "html"))
            path, data, mode = f"{share}/{sub}/t{i}.{ext}", slice_of(text, rng, n), 0o644
        else:
            ext = rng.choice(("png", "gz", "woff2"))
            path, data, mode = f"{share}/{sub}/z{i}.{ext}", rng.randbytes(n), 0o644
        if top and rng.random() < 0.3:
            path = f"{top}/{path.split('/', 3)[3]}"
        write(os.path.join(root, path), data, mode)
        done += n
        i += 1
    bins = []
    for b in range(3):
        bins.append(f"usr/bin/{name}-{b}")
        write(os.path.join(root, bins[-1]), slice_of(code, rng, 20000 + 1000 * b), 0o755)
    os.makedirs(os.path.join(root, "usr/lib64"), exist_ok=True)
    os.symlink(f"{name}/d0", os.path.join(root, f"usr/lib64/lib{name}.d"))
    write(os.path.join(root, f"etc/{name}.conf"), slice_of(text, rng, 2000))
    files = [f"/{lib}", f"/{share}", f"/usr/lib64/lib{name}.d", f"%config /etc/{name}.conf"]
    files += [f"/{b}" for b in bins]
    if top and os.path.isdir(os.path.join(root, top)):
        files.append(f"/{top}")
    return files


def spec(name, summary, content, requires=(), files=(), dirs=()):
    mkdirs = "".join(f"mkdir -p %{{buildroot}}{d}\n" for d in dirs)
    copy = f"cp -a {content}/. %{{buildroot}}/\n" if os.path.isdir(content) else ""
    return (
        # No brp scripts (strip, man page compression): the payload is the generated tree as is.
        # zstd level 9 rather than Tumbleweed's 19 so the repository builds in a minute or two;
        # unpacking costs about the same at either level.
        "%define __os_install_post %{nil}\n%define _binary_payload w9.zstdio\n"
        f"Name: {name}\nVersion: 1.0\nRelease: 1\nLicense: MIT\nSummary: {summary}\n"
        "AutoReqProv: no\n"
        + "".join(f"Requires: {r}\n" for r in requires)
        + f"\n%description\n{summary}.\n\n%install\n{mkdirs}{copy}\n%files\n"
        + "".join(f"%dir {d}\n" for d in dirs)
        + "".join(f"{f}\n" for f in files)
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--base", type=int, default=38)
    ap.add_argument("--base-mib", type=float, default=8)
    ap.add_argument("--tools", type=int, default=4)
    ap.add_argument("--tools-mib", type=float, default=12)
    ap.add_argument("--seed", type=int, default=8)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    pools = (text_pool(rng), code_pool(rng))
    specs = os.path.join(a.out, "specs")
    content = os.path.abspath(os.path.join(a.out, "content"))
    os.makedirs(specs, exist_ok=True)

    def emit(name, text):
        with open(os.path.join(specs, f"{name}.spec"), "w") as f:
            f.write(text)

    dirs = ["/usr", "/usr/bin", "/usr/lib", "/usr/lib64", "/usr/share", "/etc", "/opt", "/var"]
    emit("race-filesystem", spec("race-filesystem", "Directories", "/nonexistent", dirs=dirs))
    rel = os.path.join(content, "race-release")
    write(
        os.path.join(rel, "usr/lib/os-release"),
        b'NAME="openSUSE Tumbleweed"\nID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n'
        b'VERSION_ID="20261126"\n',
    )
    os.makedirs(os.path.join(rel, "etc"), exist_ok=True)
    os.symlink("../usr/lib/os-release", os.path.join(rel, "etc/os-release"))
    emit(
        "race-release",
        spec("race-release", "os-release", rel, ["race-filesystem"],
             ["/usr/lib/os-release", "/etc/os-release"]),
    )
    base = [f"race-base-{i:02}" for i in range(1, a.base + 1)]
    for i, name in enumerate(base, 1):
        root = os.path.join(content, name)
        files = fill(root, name, int(a.base_mib * (1 << 20)), rng, pools)
        req = ["race-filesystem"] + ([base[i // 2 - 1]] if i > 1 else [])
        emit(name, spec(name, f"Base package {i}", root, req, files))
    emit("race-base", spec("race-base", "The base image", "/nonexistent",
                           ["race-filesystem", "race-release"] + base))
    tools = [f"race-tool-{i}" for i in range(1, a.tools + 1)]
    for i, name in enumerate(tools, 1):
        root = os.path.join(content, name)
        files = fill(root, name, int(a.tools_mib * (1 << 20)), rng, pools, opt=i == len(tools))
        req = [base[(7 * i) % len(base)], base[(13 * i) % len(base)]]
        if i == 1:
            req += tools[1:-1]
        emit(name, spec(name, f"Tool {i}", root, req, files))


if __name__ == "__main__":
    main()
