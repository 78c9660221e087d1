"""Mutation testing by hand (``make mutants``): mutmut, one module at a time, against only the
tests that guard that module.

The modules and their tests are ``[tool.mutmut.modules]`` in pyproject.toml; the rest of
``[tool.mutmut]`` applies to every run. Each module gets its own working copy
``var/mutants/<module>/`` (symbolic links to the project, plus a pyproject.toml whose
``[tool.mutmut]`` names just that module and its tests), so mutmut's cache of earlier results is
kept per module and a second run only re-tests what changed. The surviving mutants — file:line
and the change that no test noticed — are printed and written to ``var/mutants/<module>.txt``.

    python deploy/mutants.py                       # every module in the table
    python deploy/mutants.py iam/lockout.py        # one module
    python deploy/mutants.py --jobs 2 iam/audit.py # parallel test processes (default 1)
    python deploy/mutants.py --postgres sso/service.py  # tests on PostgreSQL too (default SQLite)

Exit code 0 when every run finished (survivors are reported, not a failure), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "var" / "mutants"
#: not linked into a working copy (mutmut's own output lives there; pyproject.toml is generated)
SKIP = {".git", ".venv", "var", "mutants", "pyproject.toml", "node_modules"}


def load() -> tuple[str, dict[str, list[str]]]:
    text = (ROOT / "pyproject.toml").read_text()
    modules = tomllib.loads(text)["tool"]["mutmut"]["modules"]
    return text, {str(k): [str(t) for t in v] for k, v in modules.items()}


def slug(module: str) -> str:
    return module.rstrip("/").replace("/", ".").removesuffix(".py")


def pyproject_for(text: str, module: str, tests: list[str], *, postgres: bool) -> str:
    """The project's pyproject.toml with ``[tool.mutmut]`` narrowed to one module (and, unless
    ``postgres``, to the SQLite half of the storage-parametrised tests)."""
    mutmut = tomllib.loads(text)["tool"]["mutmut"]
    settings = {k: v for k, v in mutmut.items() if k != "modules"}
    if not postgres:
        settings["pytest_add_cli_args"] = [*settings.get("pytest_add_cli_args", []), "-k", "not postgres"]
    settings["only_mutate"] = [module + "*" if module.endswith("/") else module]
    settings["pytest_add_cli_args_test_selection"] = tests
    # drop the project's [tool.mutmut] and [tool.mutmut.*] tables, append the narrowed one
    kept = re.sub(r"(?ms)^\[tool\.mutmut(\.[^\]]+)?\]\n.*?(?=^\[|\Z)", "", text)
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return kept.rstrip() + "\n\n[tool.mutmut]\n" + "\n".join(lines) + "\n"


def prepare(text: str, module: str, tests: list[str], *, postgres: bool) -> Path:
    work = WORK / slug(module)
    work.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        link = work / entry.name
        if entry.name in SKIP or link.exists() or link.is_symlink():
            continue
        link.symlink_to(entry)
    (work / "pyproject.toml").write_text(pyproject_for(text, module, tests, postgres=postgres))
    return work


def mutmut(work: Path, *args: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """mutmut (from this Python's environment) in a module's working copy."""
    exe = str(Path(sys.executable).with_name("mutmut"))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(  # noqa: S603 - our own tool, fixed arguments
        [exe, *args], cwd=work, env=env, capture_output=capture, text=True, check=False
    )


def survivors(work: Path) -> list[str]:
    """One line per surviving mutant: ``file:line  mutant-name`` and the changed line."""
    out = mutmut(work, "results").stdout
    report: list[str] = []
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if status.strip() not in {"survived", "no tests", "timeout", "suspicious"}:
            continue
        diff = mutmut(work, "show", name).stdout
        report.append(f"{status.strip():9} {name}")
        report.extend("    " + d for d in _changed(diff, work))
    return report


def _changed(diff: str, work: Path) -> list[str]:
    """The removed and added lines of a mutant's diff, with the original file:line."""
    lines: list[str] = []
    path, line_no = "", 0
    for d in diff.splitlines():
        if d.startswith("--- "):
            path = d[4:].strip().removeprefix("a/")
        elif d.startswith("@@"):
            m = re.match(r"@@ -(\d+)", d)
            line_no = int(m.group(1)) if m else 0
        elif d.startswith("-") and not d.startswith("---"):
            lines.append(f"{path}:{_locate(work, path, d[1:], line_no)}: - {d[1:].strip()}")
        elif d.startswith("+") and not d.startswith("+++"):
            lines.append(f"{' ' * len(path)}   + {d[1:].strip()}")
        elif d.startswith(" "):
            line_no += 1
    return lines


def _locate(work: Path, path: str, source_line: str, near: int) -> int:
    """The line number of ``source_line`` in the original file (mutmut's diff is of one function)."""
    try:
        original = (work / path).read_text().splitlines()
    except OSError:
        return near
    hits = [i + 1 for i, text in enumerate(original) if text.rstrip() == source_line.rstrip()]
    return min(hits, key=lambda n: abs(n - near)) if hits else near


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("modules", nargs="*", help="modules from [tool.mutmut.modules] (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel test processes per module")
    parser.add_argument(
        "--postgres", action="store_true", help="also the PostgreSQL runs of the tests (twice as long)"
    )
    args = parser.parse_args()
    text, table = load()
    unknown = [m for m in args.modules if m not in table]
    if unknown:
        print(f"Not in [tool.mutmut.modules]: {', '.join(unknown)}.", file=sys.stderr)
        return 2
    ok = True
    for module in args.modules or list(table):
        work = prepare(text, module, table[module], postgres=args.postgres)
        print(f"== {module}: tests {' '.join(table[module])}", flush=True)
        done = mutmut(work, "run", "--max-children", str(args.jobs), capture=False)
        ok = ok and done.returncode == 0
        report = survivors(work)
        (WORK / f"{slug(module)}.txt").write_text("\n".join(report) + "\n")
        print(f"== {module}: {sum(1 for r in report if not r.startswith(' '))} surviving mutant(s)")
        print("\n".join(report), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
