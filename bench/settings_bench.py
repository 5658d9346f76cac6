"""What the settings cost every process at start: fresh interpreters import potability.config
(alone, or after the module a function instance or the CLI loads first) and build the settings
with ``load_settings`` from a local stack's env file. Median and minimum wall milliseconds of
``--runs`` processes per case; several ``--trees`` are measured interleaved (round by round), so
a before/after comparison shares the machine's load:

    mkdir /tmp/before && git archive <commit> potability functions pipelines components \
        training | tar -x -C /tmp/before
    .venv/bin/python bench/settings_bench.py --trees /tmp/before .

Each child runs in an empty folder with ``PYTHONPATH=<tree>``, so the tree's own packages are
imported (the project's editable install comes after ``sys.path``); the env file is written by
the tree's own ``update_env``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = {
    "import potability.config": "",
    "config + load_settings": "load",
    "functions.main + load_settings": "import functions.main\nload",
    "potability.cli + load_settings": "import potability.cli\nload",
}
WRITE_ENV = """
from pathlib import Path
import potability.config as c
c.update_env(Path({home!r}), POTABILITY_ENV="local", POTABILITY_HOME={home!r},
             DATABASE_URL="postgresql://postgres@/potability?host=/tmp/pg",
             MLFLOW_TRACKING_URI="http://127.0.0.1:5000", SAMPLES_TOKEN_SHA256="ab,cd")
"""
TIMED = """
import time
t = time.perf_counter()
{first}
import potability.config as c
{load}
print((time.perf_counter() - t) * 1000)
"""


def child(tree: Path, code: str, cwd: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True)
    if done.returncode:
        raise SystemExit(f"{tree}: {done.stderr.decode()[-2000:]}")
    return done.stdout.decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs="+", type=Path, default=[Path(".")])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    trees = [t.resolve() for t in args.trees]
    times: dict[tuple[Path, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as cwd:
        homes = {t: f"{cwd}/home-{i}" for i, t in enumerate(trees)}
        for tree in trees:
            child(tree, WRITE_ENV.format(home=homes[tree]), cwd)
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        for _ in range(args.runs):
            for case, body in CASES.items():
                for tree in trees:
                    first, _, load = body.rpartition("\n")
                    if load == "load":
                        load = f"c.load_settings(__import__('pathlib').Path({homes[tree]!r}), {{}})"
                    code = TIMED.format(first=first, load=load)
                    times.setdefault((tree, case), []).append(float(child(tree, code, cwd)))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("| case | tree | median ms | min ms |\n|---|---|---|---|")
    for case in CASES:
        for tree in trees:
            ms = times[(tree, case)]
            print(f"| {case} | {tree} | {statistics.median(ms):.0f} | {min(ms):.0f} |")


if __name__ == "__main__":
    main()
