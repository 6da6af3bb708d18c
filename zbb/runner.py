"""`zbb run`: play ZBB scenarios through a model, batched, steered where asked, resumable (the run's
configuration and work: `zbb.run_config`).

Every finished (item, condition, repetition) is appended at once to `results.jsonl` (one line,
flushed); a rerun with the same configuration skips what is there. The exact configuration and the
toolkit version are saved in `config.json`. Conditions:
- `no_interrupt`, `interrupt`: see `zbb.scenario`;
- `interrupt+steer`: the perception vector injected from the detected onset;
- `interrupt+random`: a random direction of the same norm at the same time (control), a new one for
  each (item, repetition), keyed to the run's seed: the control averages over random directions
  rather than resting on one draw;
- `interrupt+mistimed`: the right vector at the wrong time, the end of the query (control);
- `buffered`: an interruption that starts with "Um, excuse me,"; `buffered+steer` and
  `no_interrupt+steer`: the vector where nothing is missed (side effects).
A `+steer` / `+random` condition is steered from the query's onset, `+mistimed` from its end. The
oracle onset is the query's first speech (`zbb.onsets`); the energy / VAD detectors fire only while
the model speaks unless `onset_only_while_model_speaks` is off (the steering layer's shared default).
Scenarios of one (item, repetition) share their sampling noise across conditions, keyed to the item
and repetition, and batches and shards hold whole items (`zbb.work`): results do not depend on how
the work is cut into batches, shards or resumed pieces.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from duplex_steer import __version__
from duplex_steer.audio import FRAME_SAMPLES, SAMPLE_RATE
from duplex_steer.engine.noise import key_for
from duplex_steer.engine.prompt import build_prompt, prompt_frames, run_prompt
from duplex_steer.model_args import torch_dtype
from duplex_steer.probes.activity import model_activity_rule
from duplex_steer.steering import (
    PerceptionVector,
    Steering,
    SteeringController,
    make_detector,
    row_controllers,
)
from duplex_steer.steering.defaults import resolve_steering

from .asr import load_asr, transcribe_scenario
from .build import load_buffered_query_audio, load_context_audio, load_query_audio
from .onsets import QueryOnsets, onset_fields
from .results import RESULTS, append_records, read_results, record_key, repair_torn_tail
from .run_config import RANDOM, RANDOM_CONTROL, STEERED, RunConfig, check_audio, injection, run_work
from .run_folder import RunError, record_resolved
from .scenario import DONE, WAITING, Scenario, split_condition
from .scoring import is_correct, iwor, latency, talked
from .stopping import stop_after_onset
from .work import NOT_IDENTITY, config_differences, item_batches, launcher_shard, noise_keys, shard_units

# re-exported: `from zbb.runner import RunConfig, RunError, read_results, run` is the runner's public surface
__all__ = ["RANDOM", "RANDOM_CONTROL", "RESULTS", "STEERED", "RunConfig", "RunError", "Runner", "check_audio",
           "injection", "play", "prepare_run", "read_results", "remaining_work", "run", "run_work"]


class Runner:
    """Plays batches of scenarios on one loaded model."""

    def __init__(self, model, config: RunConfig):
        self.model, self.config = model, config
        self.vector = PerceptionVector.load(config.vector) if config.vector else None
        if self.vector is not None:
            self.vector.check_compatible(model)
        # layer, alpha and span: the options, else the model's defaults (recorded in config.json by `run`)
        self.settings = (resolve_steering(model, self.vector, config.layer, config.alpha, config.span)
                         if self.vector is not None else None)
        self.layer = self.settings.layer if self.settings is not None else None
        self._steering = (Steering(self.vector, [self.layer], alpha=self.settings.alpha, span=self.settings.span,
                                   schedule=config.schedule)
                          if self.vector is not None else None)  # the vector's Steering, shared by the steered rows
        self._initial: dict[tuple[str, int], tuple[np.ndarray, torch.Tensor]] = {}
        self._query_codes: dict[tuple[str, str], torch.Tensor] = {}  # (item, scenario kind) -> codes from the onset
        self.asr = load_asr(config.asr_model) if config.asr_model else None
        self._codes: dict[int, torch.Tensor] = {}  # session frame -> model codes [B, 8], for the ASR
        self.activity = model_activity_rule(model, config.rules.hold)  # "model speaking" for its vocabulary
        self._query_onsets = QueryOnsets()
        self._speech_shift: list[int] = []  # per batch item: frames from the query's placement to its speech
        self.prompt = build_prompt(model, config.voice, config.text_prompt)  # every scenario starts with it
        self._prompt_frames = prompt_frames(model, self.prompt) if self.prompt is not None else None

    def row_steerings(self, rows: Sequence[tuple[str, str, int]]) -> list[Steering | None]:
        """What steers each batch row, given as (condition, item id, repetition): the perception vector
        (one shared Steering) for injected conditions, None for unsteered ones; the random control a
        direction of the vector's norm of its own per (item, repetition), keyed to the run's seed, so
        that it does not depend on batching and averages over many random directions."""
        if self.vector is None:
            return [None] * len(rows)
        c, s = self.config, self.settings
        out: list[Steering | None] = []
        for condition, item_id, repetition in rows:
            kind = injection(condition)
            if kind == "random":
                direction = self.vector.random_like(key_for(c.seed, item_id, repetition))
                out.append(Steering(direction, [s.layer], alpha=s.alpha, span=s.span, schedule=c.schedule))
            else:
                out.append(self._steering if kind else None)
        return out

    def run_batch(self, work: Sequence[tuple[dict[str, Any], str, int]]) -> Iterator[dict[str, Any]]:
        """Play one batch; yield each record as soon as its scenario is done (noise keyed per item: `zbb.work`)."""
        model, c = self.model, self.config
        scenarios = [Scenario(item, cond, rep, load_context_audio(c.audio, item["context"]),
                              self._query(item["id"], cond), c.rules, activity=self.activity)
                     for item, cond, rep in work]
        B = len(scenarios)
        session = model.session(batch_size=B, greedy=c.greedy, noise_keys=noise_keys(c.seed, work),
                                max_frames=self._frames_bound(scenarios))
        if self._prompt_frames is not None:  # the scenario starts after the prompt, on absolute frames
            offset = run_prompt(session, self._prompt_frames)
            for s in scenarios:
                s.start_frame = offset
        for s in scenarios:  # the plan before any onset depends only on the context and the query length
            key = (s.item["context"], len(s.query))
            if key not in self._initial:
                s.replan(model.codec)
                self._initial[key] = (s.wave, s.codes)
            s.wave, s.codes = self._initial[key]
        controllers, handle = row_controllers(model, self.row_steerings(
            [(s.condition, s.item["id"], s.repetition) for s in scenarios]))
        self._speech_shift = [self._query_onset(s).frame for s in scenarios]
        detector = make_detector(c.onset, **({"frames": [None] * B} if c.onset == "oracle" else
                                             {"only_while_model_speaks": c.onset_only_while_model_speaks}))
        text_hist: list[np.ndarray] = []
        pending = set(range(B))
        self._codes = {}
        try:
            while pending:
                t = session.frame
                user = torch.stack([self._frame_codes(s, t) for s in scenarios])
                self._detect(scenarios, detector, controllers, t, text_hist)
                out = session.step(user)
                # the loop decides on what the model said: ONE copy to the host per frame (sampled text,
                # and the frame's output text), never a read per item
                sampled = (session.last_sampled_text if out is None
                           else torch.stack([session.last_sampled_text, out.text])).cpu().numpy()
                text_hist.append(sampled if out is None else sampled[0])
                if self.asr is not None and out is not None:
                    self._codes[t] = out.audio.cpu()
                recent = np.stack(text_hist[-self.activity.window :], 1)
                frame_text = None if out is None else sampled[1].tolist()
                for b, s in enumerate(scenarios):
                    if frame_text is not None:
                        s.text[t] = frame_text[b]
                    if s.phase == WAITING and s.observe(t, recent[b]):
                        s.place_query(t + 1)
                        self._replan(s)
                        if injection(s.condition) == "mistimed":
                            controllers[b].trigger(b, s.query_end_frame)
                    s.advance(t)
                    if s.phase == DONE and b in pending:
                        pending.discard(b)
                        yield self._record(s, controllers[b], b)
        finally:
            handle.remove()

    def _replan(self, s: Scenario) -> None:
        """Encode a placed query's stream: once per query where the codec allows it (`Scenario.query_codes`:
        the same codes as encoding the whole stream again), else the whole stream."""
        codec = self.model.codec
        if not s.can_splice(codec):
            s.replan(codec)
            return
        key = (s.item["id"], split_condition(s.condition)[0])
        if key not in self._query_codes:
            self._query_codes[key] = s.query_codes(codec)
        s.replan(codec, self._query_codes[key])

    def _frames_bound(self, scenarios: Sequence[Scenario]) -> int:
        """At most how many session frames a batch takes (prompt, context, the longest wait, query, reply):
        sizes the session's KV window, allocated once (a short bound only costs one growth)."""
        start = len(self._prompt_frames) if self._prompt_frames is not None else 0
        return start + max(s.context_frames + s.rules.max_wait_frames + -(-len(s.query) // FRAME_SAMPLES)
                           + s.rules.reply_frames + 2 for s in scenarios)

    def _query(self, item_id: str, condition: str) -> np.ndarray:
        if split_condition(condition)[0] == "buffered":
            return load_buffered_query_audio(self.config.audio, item_id)
        return load_query_audio(self.config.audio, item_id)

    def _query_onset(self, s: Scenario):
        return self._query_onsets.get((s.item["id"], split_condition(s.condition)[0] == "buffered"), s.query)

    def _frame_codes(self, s: Scenario, t: int) -> torch.Tensor:
        if t - s.start_frame < s.codes.shape[1]:
            return s.codes[:, t - s.start_frame]
        return s.codes[:, -1]  # trailing silence

    def _detect(self, scenarios, detector, controllers, t, text_hist) -> None:
        """Onsets for steered items (not the mistimed control): oracle = the query's first speech + the delay."""
        if not any(controllers):
            return
        if self.config.onset == "oracle":
            delay = self.config.onset_delay_frames
            for b, s in enumerate(scenarios):
                start = None if s.onset_frame is None else s.onset_frame + self._speech_shift[b] + delay
                if start == t and injection(s.condition) in ("steer", "random"):
                    controllers[b].trigger(b, t)
            return
        audio = np.stack([self._frame_audio(s, t) for s in scenarios])
        speaking = (self.activity.speaking_now(np.stack(text_hist[-self.activity.window :], 1)) if text_hist
                    else np.zeros(len(scenarios), bool))
        fired = detector.update(audio, t, speaking)
        for b, s in enumerate(scenarios):
            armed = s.phase != WAITING or s.waited_frames > 0  # detectors are armed after the context
            if fired[b] and armed and injection(s.condition) in ("steer", "random"):
                if not controllers[b].onsets[b]:
                    controllers[b].trigger(b, t)

    @staticmethod
    def _frame_audio(s: Scenario, t: int) -> np.ndarray:
        a = (t - s.start_frame) * FRAME_SAMPLES
        frame = s.wave[a : a + FRAME_SAMPLES]
        return np.pad(frame, (0, FRAME_SAMPLES - len(frame)))

    def _record(self, s: Scenario, ctl: SteeringController | None, b: int) -> dict[str, Any]:
        tok = self.model.tokenizer
        reply, chunks = s.reply(tok), s.word_chunks(tok)  # only words starting in the reply window are scored
        said = s.said_during_query(tok)  # the text stream's words begun from the onset to the reply window
        extra: dict[str, Any] = {"reply_window": list(s.reply_window), "said_during_query": said,
                                 "talked": talked(said)}
        if self.asr is not None:  # score what the model said aloud; keep the text stream's timing if no word times
            heard = transcribe_scenario(self.asr, self.model, s, self._codes, b)
            extra.update(reply_text_stream=reply, asr_word_timing=heard.chunks is not None)
            if heard.chunks is not None:
                reply, chunks = s.reply(tok, heard.chunks), heard.chunks
            else:  # no word times to cut at: transcribe the reply window's audio alone
                reply = transcribe_scenario(self.asr, self.model, s, self._codes, b, first_frame=s.reply_window[0]).text
        end_s = (s.query_end_frame - s.start_frame) * FRAME_SAMPLES / SAMPLE_RATE
        onsets = ctl.onsets[b] if ctl is not None else []
        return {
            "id": s.item["id"], "condition": s.condition, "repetition": s.repetition,
            "reply": reply, "correct": int(is_correct(s.item, reply)), "iwor": int(iwor(s.item, reply)),
            **stop_after_onset(s.text, s.onset_frame, s.end_frame, self.activity), "latency": latency(chunks, end_s),
            "onset_frame": s.onset_frame, "query_end_frame": s.query_end_frame,
            "model_speaking_at_onset": s.model_speaking_at_onset, "waited_frames": s.waited_frames,
            "steer_onsets": onsets, "steered_frames": ctl.steered_frames(b) if ctl is not None else [],
            **onset_fields(s.onset_frame, self._query_onset(s), onsets, injection(s.condition)), **extra,
        }


def run(config: RunConfig, out_dir: str | Path, model=None, progress: bool = True,
        shard: tuple[int, int] | None = None) -> Path:
    """Run (or resume) a ZBB run into `out_dir` in this process; returns the results file. `shard` = (rank,
    world); several local processes: `zbb.workers.run_in_workers`."""
    out = prepare_run(config, out_dir)
    rank, world = shard or launcher_shard()
    results = out / (RESULTS if world == 1 else f"results.rank{rank}.jsonl")
    repair_torn_tail(results)  # this process's own file only: other ranks may be writing theirs
    work = remaining_work(config, out, rank, world)
    if work:
        play(config, out, work, results, model=model, progress=progress)
    return results


def prepare_run(config: RunConfig, out_dir: str | Path) -> Path:
    """Check the configuration and save it as config.json (or check it equals the one saved: a resume)."""
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    saved = {"config": config.to_json(), "toolkit_version": __version__, "random_control": RANDOM_CONTROL}
    if cfg_path.is_file():
        previous = json.loads(cfg_path.read_text())
        if RANDOM in config.conditions and previous.get("random_control") != RANDOM_CONTROL:
            raise RunError(f"{out} was started by an older toolkit whose {RANDOM} control used one random direction "
                           "for the whole run (now one per item and repetition); its results would mix the two: "
                           "choose a new --out, or finish it with the toolkit it was started with")
        # normalised through RunConfig so that fields added since (with their defaults) still match
        differ = config_differences(RunConfig.from_json(previous.get("config", {})).to_json(), saved["config"])
        if differ:
            raise RunError(f"{out} holds a run with another configuration ({'; '.join(differ)}); resume it with "
                           f"the same options (only {', '.join(NOT_IDENTITY)} may change) or choose a new --out")
    else:
        cfg_path.write_text(json.dumps(saved, indent=1))
    return out


def remaining_work(config: RunConfig, out: Path, rank: int = 0, world: int = 1) -> list[tuple[dict[str, Any], str, int]]:
    """This shard's scenarios that no results file in `out` holds yet (a torn last line holds nothing)."""
    done = {record_key(r) for f in out.glob("results*.jsonl") for r in read_results(f)}
    return [w for w in shard_units(run_work(config), rank, world) if (w[0]["id"], w[1], w[2]) not in done]


def play(config: RunConfig, out: Path, work: Sequence[tuple[dict[str, Any], str, int]], results: Path,
         model=None, progress: bool = True, record_settings: bool = True) -> None:
    """Play `work` (whole units) batch by batch, appending each record to `results` as it finishes."""
    from duplex_steer import load

    model = model or load(config.model, device=config.device, dtype=torch_dtype(config.dtype))
    runner = Runner(model, config)
    if record_settings:
        record_resolved(out / "config.json", runner)

    def records() -> Iterator[dict[str, Any]]:
        for batch in item_batches(work, config.batch_size):
            for record in runner.run_batch(batch):
                yield dict(record, model=model.source)

    append_records(results, records(), len(work), f"zbb {model.source}" if progress else None)
