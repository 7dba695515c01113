"""Regenerate the README's generated parts from the committed results (run after committing new result tables).

- the paper-faithful clean-F1 and drops tables (`scripts/faithful_report.py`: the tables whose header rows start
  "| pair | e5-small transfer" and "| pair | P1 | P2 | P3 | PER | LOC |");
- the findings block between `<!-- findings:start -->` and `<!-- findings:end -->` (`scripts/findings_report.py`:
  its first line and its "| # |" table);
- the training-methods block between `<!-- methods:start -->` and `<!-- methods:end -->`
  (`scripts/methods_report.py`).

Usage: python scripts/update_readme.py [--check]   (--check: exit 1 when the README is not up to date, write nothing)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _run(script: str) -> str:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script)], capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout


def _table_at(lines: list[str], prefix: str) -> tuple[int, int]:
    """[start, end) of the markdown table whose first line starts with `prefix`."""
    start = next(k for k, line in enumerate(lines) if line.startswith(prefix))
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return start, end


def _table(text: str, prefix: str) -> str:
    lines = text.splitlines()
    i, j = _table_at(lines, prefix)
    return "\n".join(lines[i:j])


def _replace_table(doc: str, prefix: str, new: str) -> str:
    lines = doc.split("\n")
    i, j = _table_at(lines, prefix)
    return "\n".join(lines[:i] + new.split("\n") + lines[j:])


def _replace_block(doc: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{body}\n{end}", doc, flags=re.S)


def regenerate(readme: str) -> str:
    """The README with its generated parts rebuilt from the committed results."""
    faithful = _run("faithful_report.py")
    readme = _replace_table(readme, "| pair | e5-small transfer", _table(faithful, "| pair | e5-small transfer"))
    readme = _replace_table(readme, "| pair | P1 | P2 | P3 | PER | LOC", _table(faithful, "| pair | P1 | P2 | P3 |"))
    findings = _run("findings_report.py")
    readme = _replace_block(readme, "findings", f"{findings.splitlines()[0]}\n\n{_table(findings, '| # |')}")
    return _replace_block(readme, "methods", _run("methods_report.py").strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the README is stale; write nothing")
    args = ap.parse_args()
    old = README.read_text(encoding="utf-8")
    new = regenerate(old)
    if args.check:
        print("README is up to date" if new == old else "README is stale: run python scripts/update_readme.py")
        return 0 if new == old else 1
    README.write_text(new, encoding="utf-8")
    print("README updated" if new != old else "README already up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
