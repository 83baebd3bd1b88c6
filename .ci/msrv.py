#!/usr/bin/env python3
"""The MSRV check that needs no old toolchain: every package's declared `rust-version` must be
at least the highest `rust-version` declared by the locked dependencies a user of it builds
(normal and build dependencies, for every target platform), with its default features and
with each crypto provider. Dev-dependencies are the developers' business: they are reported,
and checked against DEV_MSRV, the toolchain the tests need (stated in README.md).

Usage: .ci/msrv.py (from the repository root; uses `cargo metadata` and `cargo tree`,
offline, on the committed lock file)."""
import json
import subprocess
import sys

DEV_MSRV = (1, 88)  # proptest 1.12, and rcgen's `time` (also sockcat's own MSRV)


def ver(s):
    return tuple(int(x) for x in (s or "0").split("."))[:2]


def show(v):
    return ".".join(map(str, v))


meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--locked", "--offline", "--no-deps"]))
declared = {p["name"]: p.get("rust_version") for p in meta["packages"]}
full = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--locked", "--offline"]))
rust_version = {(p["name"], p["version"]): p.get("rust_version") for p in full["packages"]}


def deps(package, edges, features):
    out = subprocess.check_output(
        ["cargo", "tree", "--locked", "--offline", "-p", package, "-e", edges, "--target", "all",
         "--prefix", "none", "--format", "{p}"] + features, text=True)
    seen = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] != package:
            seen.add((parts[0], parts[1].lstrip("v")))
    return sorted(((ver(rust_version.get(k)), k) for k in seen), reverse=True)


failed = False
for package, claimed in sorted(declared.items()):
    claim = ver(claimed)
    for features in ([], ["--no-default-features", "--features", "ring"]):
        highest = deps(package, "normal,build", features)
        need, (name, version) = highest[0]
        ok = need <= claim
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {package} {' '.join(features) or '(default features)'}:"
              f" rust-version {show(claim)}, dependencies need {show(need)} ({name} {version})")
    need, (name, version) = deps(package, "normal,build,dev", [])[0]
    ok = need <= DEV_MSRV
    failed |= not ok
    print(f"{'ok  ' if ok else 'FAIL'} {package} tests: need {show(need)} ({name} {version}),"
          f" developers' toolchain {show(DEV_MSRV)}")
sys.exit(1 if failed else 0)
