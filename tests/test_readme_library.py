"""The README's Library snippet runs as written, from the repository root of a fresh checkout."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def library_snippet(readme: Path = ROOT / "README.md") -> str:
    """The first ```python block of the README's "## Library" section."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("\n## Library", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md's Library section has no ```python block"
    return match.group(1)


def test_library_snippet_runs_as_written(monkeypatch, capsys):
    """It needs nothing a fresh checkout lacks (no run folder, no download): it runs on the organism."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = library_snippet()
    assert "runs/" not in code, "the snippet reads a file that only a run writes"
    exec(compile(code, "README.md (Library)", "exec"), {"__name__": "readme_library"})
    assert capsys.readouterr().out.strip()  # it prints the model's text
