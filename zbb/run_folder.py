"""A run folder's bookkeeping beside the runner: the settings known once the model has loaded, and the
merged report of every results file (`results.jsonl`, `results.rank<R>.jsonl`) in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from duplex_steer.engine.prompt import describe_prompt
from duplex_steer.errors import DuplexSteerError

from .header import resolved_run_settings, run_caveat, run_header
from .onsets import onset_markdown, onset_source, summarize_onsets
from .report import write_report
from .results import read_run_records


class RunError(DuplexSteerError, ValueError):
    """A run that cannot start: unknown condition, missing vector, config clash on resume."""


def record_resolved(cfg_path: Path, runner: Any) -> None:
    """Add to config.json what is only known once the model has loaded: the conversation start (the voice's
    hash), the steering settings as resolved (with where each came from) and the model's caveat."""
    saved = json.loads(cfg_path.read_text())
    resolved = {"prompt": describe_prompt(runner.prompt),
                "steering": runner.settings.to_json() if runner.settings is not None else None,
                "caveat": runner.model.caveat}
    if any(saved.get(k) != v for k, v in resolved.items()):
        cfg_path.write_text(json.dumps({**saved, **resolved}, indent=1))


def merge_and_report(out_dir: str | Path, caveat: str | None = None, keep_unmet: bool = False) -> dict[str, Any]:
    """Merge every shard's results into one report (items.csv, report.json/.md/.png).

    Items whose condition did not happen (`zbb.condition_check`) are listed, and left out of the scores
    unless `keep_unmet`."""
    out = Path(out_dir)
    records = read_run_records(out)
    if not records:
        raise RunError(f"no results in {out}; run `zbb run --out {out}` first")
    cfg = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else {}
    caveat = caveat if caveat is not None else run_caveat(cfg)
    run_cfg = resolved_run_settings(cfg)  # runs saved before the restriction existed were not restricted
    source = onset_source(run_cfg.get("onset", "oracle"), run_cfg.get("onset_only_while_model_speaks", False),
                          run_cfg.get("onset_delay_frames", 0))
    onsets = summarize_onsets(records)
    header = run_header(run_cfg, model=next((r["model"] for r in records if r.get("model")), None))
    header["prompt"] = cfg.get("prompt")  # the conversation start (voice, its sha256, role), as resolved
    report = write_report(records, out, caveat=caveat, header=header,
                          extra={"run": cfg, "onset_source": source, "onsets": onsets}, keep_unmet=keep_unmet)
    with (out / "report.md").open("a", encoding="utf-8") as fh:
        fh.write(onset_markdown(source, onsets))
    return report


__all__ = ["RunError", "merge_and_report", "record_resolved"]
