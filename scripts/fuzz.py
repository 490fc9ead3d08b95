#!/usr/bin/env python3
"""Fuzz every Rogatory parser for a long time (issue #7); CI runs the short mode with the tests.

The properties live in ``tests/fuzz/test_parsers.py``; this script runs them with many more
examples (``ROGATORY_FUZZ_EXAMPLES``, 100,000 per property by default), split over parallel
pytest processes, and prints what each parser was fed: the cases tried, how many gave a value,
how many were refused (and with which codes), and the failures. Failures count every call that
broke the property, so one bug shrunk by hypothesis counts many times: the test outcomes below
the table say how many bugs there are.

    python scripts/fuzz.py                          # 100,000 examples per property
    python scripts/fuzz.py --examples 10000 -k "not peer and not sealed"
    python scripts/fuzz.py --jobs 2 --statistics    # hypothesis' own statistics too
    python scripts/fuzz.py --atheris --iterations 1000000   # libFuzzer, coverage-guided

``--atheris`` fuzzes ``parse_envelope`` (and every receiver check after it) and
``parse_receipt`` (and its signature and log proof) with atheris, Google's coverage-guided
fuzzer for Python, starting from the valid encodings the tests build. Atheris is not a project
dependency: ``pip install atheris`` first. A crash leaves its input in the artifacts folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests" / "fuzz"


# --- the hypothesis properties, in parallel pytest processes ----------------------------------


def collect(keyword: str | None) -> list[str]:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
               str(TESTS.relative_to(ROOT))]
    if keyword:
        command += ["-k", keyword]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    if not ids:
        sys.exit(f"no fuzz tests collected:\n{result.stdout}{result.stderr}")
    return ids


def split(ids: list[str], jobs: int) -> list[list[str]]:
    """Round robin, the node test first: the properties cost about the same per example."""
    ordered = sorted(ids, key=lambda test_id: "peer" not in test_id)
    groups: list[list[str]] = [[] for _ in range(min(jobs, len(ordered)))]
    for position, test_id in enumerate(ordered):
        groups[position % len(groups)].append(test_id)
    return groups


def run_job(ids: list[str], env: dict[str, str], work: Path, number: int,
            statistics: bool) -> dict[str, Path]:
    files = {name: work / f"job{number}.{name}" for name in ("json", "xml", "log")}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEx",
               f"--junitxml={files['xml']}", *ids]
    if statistics:
        command.append("--hypothesis-show-statistics")
    job_env = {**env, "ROGATORY_FUZZ_REPORT": str(files["json"])}
    with files["log"].open("w", encoding="utf-8") as log:
        subprocess.run(command, cwd=ROOT, env=job_env, stdout=log, stderr=subprocess.STDOUT,
                       check=False)
    return files


def merge_reports(paths: list[Path]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for path in paths:
        if not path.exists():
            continue
        for parser, figures in json.loads(path.read_text(encoding="utf-8")).items():
            entry = merged.setdefault(parser, {"cases": 0, "returned": 0, "rejected": 0,
                                               "failures": 0, "codes": Counter()})
            for key in ("cases", "returned", "rejected", "failures"):
                entry[key] += figures[key]
            entry["codes"].update(figures["codes"])
    return merged


def outcomes(paths: list[Path]) -> list[tuple[str, str, float]]:
    found = []
    for path in paths:
        if not path.exists():
            continue
        for case in ElementTree.parse(path).getroot().iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "FAILED"
                elif child.tag == "skipped":
                    outcome = "xfail" if "xfail" in (child.get("type") or "") + (
                        child.get("message") or "") else "skipped"
            found.append((case.get("name", "?"), outcome, float(case.get("time", 0))))
    return sorted(found)


def print_report(merged: dict[str, dict[str, Any]], tests: list[tuple[str, str, float]],
                 examples: int, elapsed: float) -> None:
    print(f"\nper parser ({examples:,} examples per property; a parser may have several):")
    print(f"  {'parser':40} {'cases':>10} {'values':>9} {'refusals':>10} {'failures':>8}  "
          "most frequent codes")
    for parser, entry in sorted(merged.items()):
        codes = ", ".join(f"{code} {count:,}" for code, count in entry["codes"].most_common(3))
        print(f"  {parser:40} {entry['cases']:>10,} {entry['returned']:>9,} "
              f"{entry['rejected']:>10,} {entry['failures']:>8,}  {codes}")
    print("\nper test:")
    for name, outcome, seconds in tests:
        print(f"  {name:58} {outcome:7} {seconds:9.1f} s")
    failed = [name for name, outcome, _ in tests if outcome == "FAILED"]
    print(f"\n{len(tests)} tests, {len(failed)} failed, in {elapsed:.0f} s wall time")


def hypothesis_mode(args: argparse.Namespace) -> int:
    ids = collect(args.keyword)
    env = {**os.environ, "ROGATORY_FUZZ_EXAMPLES": str(args.examples)}
    if args.http_cases is not None:
        env["ROGATORY_FUZZ_HTTP_CASES"] = str(args.http_cases)
    if args.seed is not None:
        env["ROGATORY_FUZZ_SEED"] = str(args.seed)
    groups = split(ids, args.jobs)
    print(f"fuzzing {len(ids)} properties with {args.examples:,} examples each, "
          f"in {len(groups)} process(es)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="rogatory-fuzz-"))
    started = time.monotonic()
    with ThreadPoolExecutor(len(groups)) as pool:
        jobs = [pool.submit(run_job, group, env, work, number, args.statistics)
                for number, group in enumerate(groups)]
        files = [job.result() for job in jobs]
    elapsed = time.monotonic() - started
    tests = outcomes([f["xml"] for f in files])
    print_report(merge_reports([f["json"] for f in files]), tests, args.examples, elapsed)
    failed = any(outcome == "FAILED" for _, outcome, _ in tests) or not tests
    for job in files:
        log = job["log"].read_text(encoding="utf-8", errors="replace")
        if failed or args.statistics:
            print(f"\n--- {job['log'].name} ---\n{log[-20000:]}")
    if not failed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"\nlogs kept in {work}")
    return 1 if failed else 0


# --- atheris: coverage-guided fuzzing of the envelope and receipt parsers ------------------------

ATHERIS_TARGETS = ("envelope", "receipt")


def atheris_worker(target: str, iterations: int, work: Path, seed: int | None) -> None:
    """Runs in its own process: atheris ends it with the fuzzer's exit status."""
    import atheris

    with atheris.instrument_imports(include=["protocol"]):
        from protocol.envelope import parse_envelope
        from protocol.errors import ERRORS_BY_CODE, RogatoryError
        from protocol.log_entry import verify_receipt_proof
        from protocol.receipt import parse_receipt
    sys.path.insert(0, str(ROOT))
    from protocol.encoding import frame
    from tests.fuzz import test_parsers as corpus

    def refused(exc: RogatoryError) -> None:
        if exc.code not in ERRORS_BY_CODE:
            raise AssertionError(f"unknown code {exc.code!r}") from exc

    def envelope(data: bytes) -> None:
        try:
            parsed = parse_envelope(data)
        except RogatoryError as exc:
            refused(exc)
            return
        assert b"RGTE\x01" + frame(parsed.header_bytes, parsed.sealed) + parsed.signature == data
        try:
            corpus.open_and_read(data)
        except RogatoryError as exc:
            refused(exc)

    def receipt(data: bytes) -> None:
        try:
            parsed = parse_receipt(data)
            assert parsed.signed + (frame(parsed.proof) if parsed.proof else b"") == data
            parsed.verify(corpus.RECEIVER_PUBLIC)
            if parsed.log_index is not None:
                verify_receipt_proof(parsed, corpus.RECEIVER_PUBLIC)
        except RogatoryError as exc:
            refused(exc)

    seeds = ([e.data for e in corpus.ENVELOPES] if target == "envelope" else corpus.RECEIPTS)
    corpus_dir = work / f"corpus-{target}"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for number, data in enumerate(seeds):
        (corpus_dir / f"seed-{number}").write_bytes(data)
    options = [sys.argv[0], f"-runs={iterations}", f"-artifact_prefix={work}/",
               "-max_len=16384", "-timeout=10", "-print_final_stats=1", str(corpus_dir)]
    if seed is not None:
        options.append(f"-seed={seed}")
    atheris.Setup(options, envelope if target == "envelope" else receipt)
    atheris.Fuzz()


def atheris_mode(args: argparse.Namespace) -> int:
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install atheris (Linux, CPython 3.8-3.11)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="rogatory-atheris-"))
    status = 0
    for target in ATHERIS_TARGETS:
        command = [sys.executable, str(Path(__file__).resolve()), "--atheris-worker", target,
                   "--iterations", str(args.iterations), "--work", str(work)]
        if args.seed is not None:
            command += ["--seed", str(args.seed)]
        started = time.monotonic()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        output = result.stdout + result.stderr
        done = re.search(r"Done (\d+) runs in (\d+) second", output)
        runs = int(done.group(1)) if done else 0
        coverage = re.findall(r"cov: (\d+) ft: (\d+)", output)
        cov = f", coverage {coverage[-1][0]} edges / {coverage[-1][1]} features" if coverage else ""
        print(f"atheris {target:8}: {runs:,} runs in {elapsed:.0f} s{cov}, "
              f"exit status {result.returncode}")
        if result.returncode != 0:
            status = 1
            print(output[-6000:])
    print(f"artifacts and corpora in {work}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100_000,
                        help="examples per hypothesis property (default 100000)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="parallel pytest processes (default: 2, or 1 on one core)")
    parser.add_argument("-k", dest="keyword", help="only the properties pytest -k selects")
    parser.add_argument("--http-cases", type=int,
                        help="requests to the running node (default: 300 in the long mode)")
    parser.add_argument("--seed", type=int, help="seed of the node test (and of libFuzzer)")
    parser.add_argument("--statistics", action="store_true",
                        help="print hypothesis' statistics and the pytest logs")
    parser.add_argument("--atheris", action="store_true",
                        help="fuzz parse_envelope and parse_receipt with atheris instead")
    parser.add_argument("--iterations", type=int, default=100_000,
                        help="atheris runs per target (default 100000)")
    parser.add_argument("--atheris-worker", choices=ATHERIS_TARGETS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.atheris_worker:
        atheris_worker(args.atheris_worker, args.iterations, args.work, args.seed)
        return 0
    if args.atheris:
        return atheris_mode(args)
    return hypothesis_mode(args)


if __name__ == "__main__":
    sys.exit(main())
