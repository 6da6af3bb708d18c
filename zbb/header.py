"""The settings a ZBB or FDB report was made with: model, steering (layer, alpha, span, schedule,
onset detector) and the vector file with its SHA-256 fingerprint, for report.json and report.md."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def file_sha256(path: str | Path) -> str | None:
    """Hex SHA-256 of a file, or None when it is not there (the report then says so)."""
    p = Path(path)
    if not p.is_file():
        return None
    digest = hashlib.sha256()
    with p.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def vector_layers(path: str | Path) -> list[int]:
    """The layers a perception vector file holds (tensors `layer.<L>`), without loading the tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        return sorted(int(k.split(".", 1)[1]) for k in fh.keys() if k.startswith("layer."))


def run_header(run: Mapping[str, Any], model: str | None = None) -> dict[str, Any]:
    """Settings of a run from its saved RunConfig (config.json's "config"); `model`: the loaded source."""
    vector = run.get("vector")
    layer, layer_from = run.get("layer"), run.get("layer_from", "--layer")
    if vector and layer is None and Path(vector).is_file():
        layers = vector_layers(vector)
        layer, layer_from = (layers[0] if layers else None), "the vector's first layer"
    onset = str(run.get("onset", "oracle"))
    if onset != "oracle" and "onset_only_while_model_speaks" in run:
        onset += " (fires only while the model speaks)" if run["onset_only_while_model_speaks"] else " (always armed)"
    delay = int(run.get("onset_delay_frames") or 0)
    if delay:
        onset += f" + {delay} frame{'s' if delay != 1 else ''} delay ({delay * 80} ms)"
    steering = None
    if vector:
        steering = {"layer": layer, "layer_from": layer_from, "alpha": run.get("alpha"), "span": run.get("span"),
                    "schedule": run.get("schedule"), "onset": onset, "onset_delay_frames": delay}
        # where alpha and span came from (an option or the model's default), once a run has resolved them
        steering.update({k: run[k] for k in ("alpha_from", "span_from") if run.get(k)})
    random_control = None
    if vector and "interrupt+random" in (run.get("conditions") or []):
        random_control = run.get("random_control") or "one random direction for the whole run (made before per-item draws)"
    bank = run.get("item_bank")
    return {
        "model": model or run.get("model"), "steering": steering, "random_control": random_control,
        "item_bank": {"path": bank, "sha256": file_sha256(bank)} if bank else None,
        "vector": vector, "vector_sha256": file_sha256(vector) if vector else None,
        "sampling": "greedy" if run.get("greedy") else f"sampled, seed {run.get('seed', 0)}",
        "repetitions": run.get("repetitions", 1), "scorer": f"ASR {run['asr_model']}" if run.get("asr_model")
        else "the model's text stream, rule-based (zbb.scoring)",
    }


def run_caveat(cfg: dict[str, Any]) -> str | None:
    """The caveat a run's report carries: the one its model declared (random weights, the organism), else
    what the model's name says for runs saved before models declared one."""
    if cfg.get("caveat"):
        return cfg["caveat"]
    model_name = str(cfg.get("config", {}).get("model", ""))
    if model_name.startswith(("tiny", "mid", "full")):
        from duplex_steer import PIPELINE_CHECK_NOTE

        return f"{model_name}: {PIPELINE_CHECK_NOTE}"
    if "organism" in model_name:
        from duplex_steer.organism import ORGANISM_NOTE

        return ORGANISM_NOTE
    return None


def resolved_run_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run's options with the steering settings as resolved after loading (for the report's header)."""
    run_cfg = dict(cfg.get("config", {}))
    if cfg.get("random_control"):  # how `zbb run` drew the random-direction control (absent before per-item draws)
        run_cfg["random_control"] = cfg["random_control"]
    steering = cfg.get("steering")
    if steering:
        run_cfg.update({k: steering[k] for k in ("layer", "alpha", "span")})
        run_cfg.update({f"{k}_from": v for k, v in steering.get("from", {}).items()})
    return run_cfg


def render_header(header: Mapping[str, Any]) -> str:
    """Markdown lines for the top of a report."""
    lines = [f"- **Model:** {header.get('model')}"]
    bank = header.get("item_bank")
    if bank:
        lines.append(f"- **Items:** `{bank['path']}` (sha256 {bank['sha256'] or 'unknown: file not found'}), "
                     "not ZBB's item bank: these figures are not ZBB scores")
    s = header.get("steering")
    if s:
        alpha_from = f" ({s['alpha_from']})" if s.get("alpha_from") else ""
        span_from = f" ({s['span_from']})" if s.get("span_from") else ""
        lines.append(f"- **Steering:** layer {s['layer']} ({s['layer_from']}), alpha {s['alpha']}{alpha_from}, "
                     f"span {s['span']} frames{span_from}, {s['schedule']} schedule, onset {s['onset']}")
        sha = header.get("vector_sha256")
        lines.append(f"- **Vector:** `{header.get('vector')}` (sha256 {sha if sha else 'unknown: file not found'})")
        if header.get("random_control"):
            lines.append(f"- **Random control:** {header['random_control']}")
    else:
        lines.append("- **Steering:** none (no vector)")
    lines.append(f"- **Decoding:** {header.get('sampling')}; repetitions {header.get('repetitions')}; "
                 f"scored from {header.get('scorer')}")
    prompt = header.get("prompt")
    if prompt:
        voice = prompt.get("voice")
        sha = f" (sha256 {prompt['voice_sha256']})" if prompt.get("voice_sha256") else ""
        role = prompt.get("text_prompt")
        lines.append(f"- **Conversation start:** voice {voice or 'none'}{sha}; role {repr(role) if role else 'none'}")
    else:
        lines.append("- **Conversation start:** none (the recording starts at frame 0)")
    return "\n".join(lines) + "\n"


__all__ = ["file_sha256", "render_header", "resolved_run_settings", "run_caveat", "run_header", "vector_layers"]
