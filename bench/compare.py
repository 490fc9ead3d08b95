"""Two versions of the node, taking turns under ``exchange.py``: how changes here are judged.

On a shared VM whose speed drifts by a third over minutes, one run of each version says
little; runs that take turns, each pair close in time, say more. This exports each version
with ``git archive`` into a temporary folder, copies *this* checkout's ``bench/`` into both (so
the harness is the same and only the node differs), and runs ``bench/exchange.py`` with the
given arguments for each in turn, ``--pairs`` times, alternating which goes first. It prints
every run's figures side by side: the sustained rate and ratio, the CPU per envelope (sender /
receiver) and each paced run's p50 / p99 and CPU. Nothing is averaged away; the reader sees
the spread.

Run: ``python bench/compare.py 291a52c HEAD -- -n 0 --rates 25,100,300 --paced 1000``
(``WORKTREE`` as a version means the files as they are now, committed or not).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKTREE = "WORKTREE"
LINES = re.compile(r"^\s+(sustained|paced at|CPU per envelope|raw single-core limit)")


def export(version: str, into: Path) -> None:
    """The tracked files of ``version`` (or of the working tree) into ``into``."""
    into.mkdir(parents=True)
    if version == WORKTREE:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                                capture_output=True).stdout.split(b"\0")
        for name in filter(None, listed):
            source = ROOT / name.decode()
            if source.is_file():
                (into / name.decode()).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, into / name.decode())
        return
    archive = subprocess.run(["git", "archive", "--format=tar", version], cwd=ROOT,
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def run(tree: Path, arguments: list[str]) -> list[str]:
    """One ``exchange.py`` run on ``tree``'s node code; the lines worth comparing."""
    env = {**os.environ, "PYTHONPATH": str(tree)}  # ahead of an editable install
    done = subprocess.run([sys.executable, str(tree / "bench" / "exchange.py"), *arguments],
                          cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"exchange.py failed on {tree.name}:\n{done.stdout}{done.stderr}")
    return [line.strip() for line in done.stdout.splitlines() if LINES.match(line)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("base", help="a commit, or WORKTREE")
    parser.add_argument("candidate", help="a commit, or WORKTREE")
    parser.add_argument("--pairs", type=int, default=3, help="runs of each (default 3)")
    parser.epilog = "Arguments after -- go to exchange.py (default: -n 5000)."
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    arguments = argv[split + 1:] or ["-n", "5000"]
    with tempfile.TemporaryDirectory(prefix="rogatory-compare-") as folder:
        trees = {}
        for label, version in (("base", args.base), ("candidate", args.candidate)):
            tree = Path(folder) / label
            export(version, tree)
            shutil.rmtree(tree / "bench")
            shutil.copytree(ROOT / "bench", tree / "bench",
                            ignore=shutil.ignore_patterns("__pycache__"))
            trees[label] = tree
        print(f"base {args.base}, candidate {args.candidate}; exchange.py {' '.join(arguments)}")
        for pair in range(args.pairs):
            order = ["base", "candidate"] if pair % 2 == 0 else ["candidate", "base"]
            for label in order:
                print(f"== pair {pair + 1}, {label}")
                for line in run(trees[label], arguments):
                    print(f"   {line}")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
