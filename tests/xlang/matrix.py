"""Cross-language matrix: writers in Rust, Python and C++ x readers in Rust,
Python and C++, as separate processes. Each writer run has one reader per
language attached; every reader verifies every value of every batch against
the shared bar formula, checks that every buffer lies inside the arena (zero
copy), and holds its first batch for the whole run, re-checking it at the end:
a reader in one language holding a batch must keep a writer in another
language from reusing that slot.

Usage: python tests/xlang/matrix.py [--batches 100] [--rows 64]
Drivers (same CLI and JSON, see crates/xtest/README.md):
  rust   target/{debug,release}/rf-xtest
  python tests/xlang/py_xtest.py (run with this interpreter; needs ringfeed + pyarrow)
  c++    build/cpp/rf-xtest-cpp  (override with $RINGFEED_CPP_XTEST)
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def first_existing(*paths: Path) -> "Path | None":
    return next((p for p in paths if p.exists()), None)


def drivers() -> "dict[str, list[str] | str]":
    """Command prefix per language, or a string saying why it is missing."""
    d: "dict[str, list[str] | str]" = {}
    rust = first_existing(ROOT / "target/debug/rf-xtest", ROOT / "target/release/rf-xtest")
    d["rust"] = [str(rust)] if rust else "rf-xtest not built (cargo build -p ringfeed-xtest)"
    try:
        import ringfeed  # noqa: F401
        import pyarrow  # noqa: F401
        d["python"] = [sys.executable, str(ROOT / "tests/xlang/py_xtest.py")]
    except ImportError as e:
        d["python"] = f"python package not importable: {e}"
    cpp = os.environ.get("RINGFEED_CPP_XTEST")
    cpp_path = Path(cpp) if cpp else first_existing(ROOT / "build/cpp/rf-xtest-cpp", ROOT / "build/cpp-release/rf-xtest-cpp")
    d["c++"] = [str(cpp_path)] if cpp_path and cpp_path.exists() else "C++ driver not built (scripts/test_cpp.sh builds build/cpp/rf-xtest-cpp)"
    return d


def run_case(writer: str, readers: "list[str]", cmds: dict, batches: int, rows: int, timeout: float) -> "list[tuple[str, bool, str]]":
    name = f"xlang-{writer.replace('+', 'p')}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    subs = {}
    for lang in readers:
        subs[lang] = subprocess.Popen(
            cmds[lang] + ["subscribe", "--name", name, "--expect", str(batches), "--start", "oldest",
                          "--rows", str(rows), "--hold-first", "--timeout-ms", str(int(timeout * 1000))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pub = subprocess.Popen(
        cmds[writer] + ["publish", "--name", name, "--batches", str(batches), "--rows", str(rows),
                        "--slots", "8", "--block-ms", "10000", "--wait-readers", str(len(readers))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = []
    try:
        pout, perr = pub.communicate(timeout=timeout)
        pub_ok = pub.returncode == 0 and f"published {batches}" in pout
        for lang, p in subs.items():
            out, err = p.communicate(timeout=timeout)
            line = out.strip().splitlines()[-1] if out.strip() else "{}"
            try:
                j = json.loads(line)
            except json.JSONDecodeError:
                j = {"error": f"no JSON line; stderr: {err.strip()[-300:]}"}
            ok = (p.returncode == 0 and j.get("verified") is True and j.get("zero_copy") is True
                  and j.get("batches") == batches and j.get("first_seq") == 1 and pub_ok)
            why = "" if ok else (j.get("error") or (perr.strip()[-300:] if not pub_ok else err.strip()[-300:]))
            results.append((lang, ok, why or f"json={line}"))
    except subprocess.TimeoutExpired:
        for p in [pub, *subs.values()]:
            p.kill()
        results = [(lang, False, f"watchdog: no result within {timeout} s") for lang in readers]
    finally:
        for p in [pub, *subs.values()]:
            if p.poll() is None:
                p.kill()
        shm = Path(os.environ.get("RINGFEED_SHM_DIR", "/dev/shm")) / f"ringfeed.{name}"
        shm.unlink(missing_ok=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=120.0, help="watchdog per writer run, seconds")
    a = ap.parse_args()
    cmds = drivers()
    langs = ["rust", "python", "c++"]
    missing = {k: v for k, v in cmds.items() if isinstance(v, str)}
    for k, why in missing.items():
        print(f"SKIP {k}: {why}")
    have = [l for l in langs if l not in missing]
    passed = failed = skipped = 0
    for w in langs:
        if w not in have:
            skipped += len(langs)
            continue
        skipped += len(langs) - len(have)
        for reader, ok, why in run_case(w, have, cmds, a.batches, a.rows, a.timeout):
            tag = "ok  " if ok else "FAIL"
            print(f"{tag} {w:>6} writer -> {reader:<6} reader" + ("" if ok else f": {why}"), flush=True)
            passed += ok
            failed += not ok
    print(f"xlang: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or (os.environ.get("CI") and skipped) else 0


if __name__ == "__main__":
    sys.exit(main())
