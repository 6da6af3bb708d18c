"""What several benchmarks share: the machine they ran on, the code they measured, writing results.

Benchmarks run as files (`python benchmarks/X.py`), so they import this as a sibling module.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    """The processor's model name (/proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


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
