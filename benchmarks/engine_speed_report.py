"""The report of benchmarks/engine_speed.py: verdicts against the targets and the markdown tables."""

from __future__ import annotations

from typing import Any

from engine_timing import QUIET_CORES

RATIO_TARGET = 1.0  # our per-step cost at most 1.0x generate's
GPU_FULL_TARGET_MS = 80.0  # full 7B, bf16, batch 1: real time
STEER_TARGET_PCT = 2.0  # steering adds under 2% at batch 1 and 8 on mid


def fmt(x: Any, pattern: str = "{:.1f}") -> str:
    """`x` formatted, or '-' when it was not measured."""
    return "-" if x is None else pattern.format(x)


def contended(row: dict[str, Any], threshold: float = QUIET_CORES) -> bool:
    best = (row.get("other_load_cores") or {}).get("best")
    return best is not None and best >= threshold




def verdicts(rows: list[dict[str, Any]], device: str, dtype: str) -> list[str]:
    out = []
    by = {(r["preset"], r["batch"]): r for r in rows}
    for r in rows:
        if r.get("ratio_ours_to_generate") is not None:
            ok = r["ratio_ours_to_generate"] <= RATIO_TARGET
            out.append(f"- {r['preset']} batch {r['batch']}: ours / generate per step = "
                       f"{r['ratio_ours_to_generate']:.2f}x (target <= {RATIO_TARGET:.1f}x) -> "
                       f"**{'PASS' if ok else 'FAIL'}**")
    if device == "cuda":
        r = by.get(("full", 1)) or by.get(("full-personaplex", 1))
        if r is not None and "ms_per_step" in r:
            ok = r["ms_per_step"] < GPU_FULL_TARGET_MS
            out.append(f"- {r['preset']} ({dtype}) batch 1: {r['ms_per_step']:.1f} ms/step (target < "
                       f"{GPU_FULL_TARGET_MS:.0f} ms, real time) -> **{'PASS' if ok else 'FAIL'}**")
    for r in rows:
        for key, what in (("steering_overhead_pct", "steering"), ("probe_overhead_pct", "probe state capture")):
            if r.get(key) is not None and r["preset"] == "mid" and r["batch"] in (1, 8):
                ok = r[key] < STEER_TARGET_PCT
                out.append(f"- mid batch {r['batch']}: {what} overhead {r[key]:+.1f}% "
                           f"(target < {STEER_TARGET_PCT:.0f}%) -> **{'PASS' if ok else 'FAIL'}**")
    return out


def render(report: dict[str, Any]) -> str:
    m, a, rows = report["machine"], report["args"], report["rows"]
    cuda = a["device"] == "cuda"
    steer = any("steered_ms_per_step" in r for r in rows)
    probe = any("probed_ms_per_step" in r for r in rows)
    lines = [
        "# Engine speed",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_total_gib']:.0f} GiB"
        + (f", GPU {m['gpu']}" if cuda else "")
        + f"; torch {m['torch']} ({m['torch_threads']} threads), transformers {m['transformers']}, "
        f"python {m['python']}; device {a['device']}, {a['dtype']}.",
        f"Run: {report['started']} ({report['wall_s']:.0f} s); load average (1 min) at start "
        f"{report['loadavg_start']:.2f}, at end {report['loadavg_end']:.2f} (includes this benchmark's own "
        "workers). 'other load' = cores that OTHER processes kept busy (/proc/stat minus the worker's own CPU "
        "time): during the measurements each figure was taken from (best), and the worst over the row (max); "
        "'rounds' = measurement rounds (more than the repeats when contention forced retries).",
        f"Command: `{report['command']}`",
        "",
        f"Each figure is the best of at least {a['repeats']} rounds of {a['frames']} timed steps after {a['warmup']} "
        "warm-up steps of a fresh sampling session (reference defaults), random user codes, random "
        "weights (pipeline check). One step advances all B conversations by one 80 ms frame. "
        "frames/s = B x frames / s; RTF = ms per step / 80 ms (below 1 = faster than real time). "
        f"generate = transformers `MoshiForConditionalGeneration.generate` on the same weights in the same "
        f"process, per step = (t({a['gen_frames'][1]} new) - t({a['gen_frames'][0]} new)) / "
        f"{a['gen_frames'][1] - a['gen_frames'][0]}; it is NOT full duplex (it feeds blank user audio after "
        "its prompt), only a cost yardstick. Peak memory: "
        + ("torch.cuda.max_memory_allocated per phase (reset before our steps and before generate); "
           if cuda else "")
        + ("ru_maxrss of a fresh worker process per row, read after our steps, then after generate."
           if a["isolate"] == "config" else
           "ru_maxrss of one worker process per preset, read after our steps, then after generate: "
           "cumulative over that preset's rows."),
        "",
    ]
    head = ["preset", "batch", "ms/step", "frames/s", "RTF", "generate ms/step", "ours/generate"]
    if steer:
        head += ["steered ms/step", "steering overhead"]
    if probe:
        head += ["probed ms/step (every layer captured)", "probe overhead"]
    head += ["peak RSS ours MiB", "peak RSS +generate MiB"]
    if cuda:
        head += ["GPU weights MiB", "GPU peak ours MiB", "GPU peak generate MiB"]
    head += ["other load best / max (cores)", "rounds"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r and "ms_per_step" not in r:
            lines.append(f"| {r['preset']} | {r['batch']} | error: {r['error']} |" + " |" * (len(head) - 3))
            continue
        cells = [r["preset"], str(r["batch"]), fmt(r.get("ms_per_step"), "{:.2f}"), fmt(r.get("frames_per_s")),
                 fmt(r.get("rtf"), "{:.3f}"), fmt(r.get("generate_ms_per_step"), "{:.2f}"),
                 fmt(r.get("ratio_ours_to_generate"), "{:.2f}x")]
        if steer:
            cells += [fmt(r.get("steered_ms_per_step"), "{:.2f}"), fmt(r.get("steering_overhead_pct"), "{:+.1f}%")]
        if probe:
            cells += [fmt(r.get("probed_ms_per_step"), "{:.2f}"), fmt(r.get("probe_overhead_pct"), "{:+.1f}%")]
        cells += [fmt(r.get("peak_rss_ours_mib"), "{:.0f}"), fmt(r.get("peak_rss_with_generate_mib"), "{:.0f}")]
        if cuda:
            cells += [fmt(r.get("cuda_weights_mib"), "{:.0f}"), fmt(r.get("cuda_peak_ours_mib"), "{:.0f}"),
                      fmt(r.get("cuda_peak_generate_mib"), "{:.0f}")]
        other = r.get("other_load_cores") or {}
        flag = " (contended)" if contended(r, a["quiet_cores"]) else ""
        cells.append(f"{fmt(other.get('best'), '{:.2f}')} / {fmt(other.get('max'), '{:.2f}')}{flag}")
        cells.append(str(r.get("rounds", "-")))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Targets (issue):", ""]
    lines += verdicts(rows, a["device"], a["dtype"]) or ["- (no targets apply to this selection)"]
    lines += ["", "The comparison with the reference implementation (kyutai moshi's LMGen) is measured in one run "
              "by benchmarks/reference_speed.py; the full 7B must step in under 80 ms "
              "per frame at batch 1 on a GPU (bf16). Absolute figures depend on the other load shown; "
              "ratios (ours/generate, steering overhead) are measured in the same process and are robust to it."]
    busy_rows = [r for r in rows if contended(r, a["quiet_cores"])]
    if busy_rows:
        lines += ["", f"WARNING: in {len(busy_rows)} row(s) (marked contended) a best figure was taken while other "
                  f"processes kept {report['args']['quiet_cores']} cores or more busy: absolute figures there are "
                  "pessimistic, and so may be ratios; rerun on a quiet machine."]
    errors = [r for r in rows if "error" in r]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {r['preset']} batch {r['batch']}: {r['error']}" for r in errors]
    return "\n".join(lines) + "\n"
