"""What several benchmarks share: the machine they ran on, the code they measured, writing results.

Benchmarks run as files (`python benchmarks/X.py`), so they import this as a sibling module.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    """The processor's model name (`duplex_steer.threads.cpu_name`), imported when called: reference_speed.py's
    reference worker imports this module in the reference environment, where the package is not installed."""
    from duplex_steer.threads import cpu_name as library_cpu_name

    return library_cpu_name()


def machine_line() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores"


def git_head() -> str:
    """The commit measured, marked when tracked files had uncommitted changes."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return out + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_results(out: Path, report: dict[str, Any], text: str) -> None:
    """Print the markdown and write it beside its JSON (`out` without suffix: OUT.md and OUT.json)."""
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
