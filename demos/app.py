"""Gradio demo: one user recording, an unsteered and a steered conversation side by side.

    from demos.app import launch
    launch("organism")                  # http://127.0.0.1:7860, no public link

Pick a model (any source `duplex_steer.load` accepts), a perception vector (a file, or one fitted
at start-up on a few dialogues of the committed set), and a recording (a ZBB item spliced after
its context prompt, an upload, or the microphone). One click runs both conversations in one batch
(`steer_recording`) with online affinities, and shows the two outputs, the model's text with the
onset marked, S_gen / S_perc over time with the steering window shaded, the layer x time
heatmaps, and the run's JSON. User errors become a message in the page, never a traceback.

The page and the run live here; the recordings in `demos.recordings`, the server state and default
vectors in `demos.state`, what a run shows in `demos.views`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from duplex_steer import PIPELINE_CHECK_NOTE
from duplex_steer.audio import save_audio
from duplex_steer.engine.prompt import check_voice_arg
from duplex_steer.errors import DuplexSteerError
from duplex_steer.probes.activity import Activity, energy_activity, text_activity, turns_activity
from duplex_steer.probes.affinity import AffinityResult, OnlineAffinity, default_band
from duplex_steer.prompt_args import prompt_line
from duplex_steer.steering import (
    ONLY_WHILE_MODEL_SPEAKS,
    SCHEDULES,
    PerceptionVector,
    Steering,
    make_detector,
)
from duplex_steer.steering.compare import SteeredComparison, oracle, steer_recording
from duplex_steer.steering.defaults import default_steering

from .recordings import (
    DEFAULT_LIMITS,
    FRAME_S,
    DemoError,
    DemoLimits,
    DemoRecording,
    describe_upload,
    user_recording,
    zbb_items,
    zbb_recording,
)
from .state import DemoState, default_alpha, default_layer, resolve_vector
from .views import frames_text, model_banner, plot_run_timeline, text_segments

log = logging.getLogger("duplex_steer.demo")

MODEL_CHOICES = ("organism", "tiny", "tiny-personaplex", "mid")
DETECTORS = ("oracle", "energy", "vad")
SOURCE_ZBB, SOURCE_USER = "ZBB item", "Your recording (upload or microphone)"
DEFAULT_ITEM = "penguins-false"
TEXT_COLORS = {"user onset": "#dc2626", "steered frames": "#f59e0b", "after onset": "#93c5fd"}
CSS = """
.ds-banner {padding: 8px 12px; border-radius: 6px; background: #f3f4f6; line-height: 1.5}
.ds-caveat {color: #b91c1c; font-weight: 600}
.ds-col-title {text-align: center}
.ds-plot img {padding-top: 30px}
.ds-text, .ds-text * {word-break: normal !important; overflow-wrap: break-word !important}
"""


# --- the run --------------------------------------------------------------------------------------------
def run_comparison(model, recording: DemoRecording, steering: Steering, detector, seed: int,
                   prompt=None) -> tuple[SteeredComparison, AffinityResult]:
    """Both conversations in one batch (after `prompt`, if any), with S_gen / S_perc at every layer for both."""
    with OnlineAffinity(model, None) as aff:
        cmp = steer_recording(model, recording.wav, steering, detector, seed=seed, progress=True,
                              on_frame=aff.on_frame, prompt=prompt)
    S_gen, S_perc, comps = aff.arrays()
    T = S_gen.shape[1]
    if recording.turns:
        user, source = turns_activity(recording.turns, T), "turn timings"
    else:
        user, source = energy_activity(recording.wav, T), "audio energy"
    onsets = [list(cmp.onset_frames), list(cmp.onset_frames)]
    activity = Activity(user=np.stack([user, user]), model=text_activity(cmp.result.text_tokens.numpy()),
                        onsets=onsets, user_source=source, model_source="text stream: word token + 3 frames")
    result = AffinityResult(S_gen=S_gen, S_perc=S_perc, layers=aff.layers, band=default_band(model.num_layers),
                            activity=activity, onsets=onsets, model_label=model.label, is_random=model.is_random,
                            lenses=aff.lens_info(), components=comps)
    return cmp, result


# --- the page -------------------------------------------------------------------------------------------
def build_app(model_source: str = "organism", vector: str | Path | None = None, *, device: str | None = None,
              dtype: Any = None, limits: DemoLimits = DEFAULT_LIMITS, fit_dialogues: int = 4,
              voice: str | None = None, text_prompt: str | None = None) -> gr.Blocks:
    """The demo page. Loads `model_source` now; with no `vector`, fits the default one now (cached).
    `voice` / `text_prompt`: the conversation start (see `duplex_steer.prompt_args`)."""
    check_voice_arg(voice)
    state = DemoState(device=device, fit_dialogues=fit_dialogues, limits=limits, dtype=dtype, voice=voice,
                      text_prompt=text_prompt)
    model = state.model(model_source)
    layer0 = default_layer(model.num_layers, model)
    if vector is not None:
        vec = PerceptionVector.load(vector)
        vec.check_compatible(model)
        layer0, vector_desc = vec.layers[0], f"vector file {Path(vector).name} (layers {vec.layers})"
    else:
        print(f"[demo] fitting a default perception vector on {fit_dialogues} dialogues (layer {layer0}) ...",
              file=sys.stderr)
        _, vector_desc = state.fitted_vector(model, layer0, when="at start-up")
        print(f"[demo] {vector_desc}", file=sys.stderr)
    items = zbb_items()
    item_choices = [(f"{i}: {it['text']}  (after: {it['context']})", i) for i, it in items.items()]

    with gr.Blocks(title="duplex-steer demo", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        app.demo_state = state  # for tests and launch()
        gr.Markdown("## duplex-steer: steering a full-duplex model after a user interruption\n"
                    "One recording, two conversations in one batch: **unsteered** and **steered** (the perception "
                    "vector is added at the steering layer for `span` frames after the detected onset).")
        banner = gr.HTML(model_banner(model, vector_desc))
        with gr.Row():
            with gr.Column(scale=1):
                gr.Markdown("### Model, vector, recording")
                with gr.Row():
                    model_box = gr.Dropdown(list(dict.fromkeys([model_source, *MODEL_CHOICES])), value=model_source,
                                            allow_custom_value=True, scale=3, label="Model",
                                            info="preset, local folder or hub repo id")
                    load_btn = gr.Button("Load model", scale=1)
                with gr.Accordion("Perception vector file (optional)", open=vector is not None):
                    vector_path = gr.Textbox(str(vector) if vector else "", label="Vector file (path on the server)",
                                             placeholder=f"empty: a vector fitted on {fit_dialogues} dialogues of "
                                                         "the committed set")
                    vector_file = gr.File(label="...or upload one (.safetensors from `duplex-steer fit-vector`)",
                                          file_types=[".safetensors"])
                source = gr.Radio([SOURCE_ZBB, SOURCE_USER], value=SOURCE_ZBB, label="Recording")
                item = gr.Dropdown(item_choices, value=DEFAULT_ITEM if DEFAULT_ITEM in items else item_choices[0][1],
                                   label="ZBB item (query spoken after its context prompt)")
                user_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", visible=False, elem_id="user-audio",
                                      label=f"Your recording (at most {limits.max_seconds:g} s, "
                                            f"{limits.max_upload_mb:g} MB)")
                interruption = gr.Slider(0.0, 30.0, value=3.2, step=FRAME_S, label="Interruption time (s)",
                                         info="ZBB: when the query starts; your recording: the oracle onset")
                reply = gr.Slider(0.5, 15.0, value=4.0, step=0.5, label="Reply window (s)",
                                  info="ZBB: silence after the query, while the model answers")
            with gr.Column(scale=1):
                gr.Markdown("### Steering")
                layer = gr.Slider(0, model.num_layers - 1, value=layer0, step=1, label="Layer",
                                  info="where the vector is added (the vector must have this layer)")
                alpha = gr.Slider(0.0, 20.0, value=default_alpha(model), step=0.1, label="Alpha (strength)")
                span = gr.Slider(1, 25, value=default_steering(model)["span"], step=1, label="Span (frames of 80 ms)")
                schedule = gr.Dropdown(sorted(SCHEDULES), value="linear", label="Schedule",
                                       info="weight over the span: linear 1 -> 1/span, constant, exponential")
                detector = gr.Radio(list(DETECTORS), value="oracle", label="Onset detector",
                                    info="oracle: the known interruption time; energy / VAD: detected live")
                # the steering layer's default, the one `duplex-steer steer` and `zbb run` use
                only_speaking = gr.Checkbox(ONLY_WHILE_MODEL_SPEAKS, label="Energy / VAD fire only while the model speaks")
                seed = gr.Number(0, precision=0, label="Seed (sampling)")
                run_btn = gr.Button("Run unsteered + steered", variant="primary")
        message = gr.Textbox(label="Messages", interactive=False, lines=2, elem_id="messages")
        input_audio = gr.Audio(label="Input: the user's recording as fed to the model", type="filepath",
                               interactive=False)
        outs: dict[str, list[Any]] = {}
        with gr.Row(equal_height=False):
            for name in ("unsteered", "steered"):
                with gr.Column(elem_id=f"col-{name}"):
                    gr.Markdown(f"### {name.capitalize()}", elem_classes="ds-col-title")
                    outs[name] = [
                        gr.Audio(label=f"{name} model output", type="filepath", interactive=False,
                                 elem_id=f"audio-{name}"),
                        gr.HighlightedText(label=f"{name} model text (onset marked)", show_legend=True,
                                           color_map={k: v for k, v in TEXT_COLORS.items()
                                                      if name == "steered" or k != "steered frames"},
                                           elem_id=f"text-{name}", elem_classes="ds-text"),
                        gr.Image(label=f"{name}: S_gen / S_perc over time", type="filepath", interactive=False,
                                 show_label=False, buttons=["download", "fullscreen"], elem_id=f"timeline-{name}", elem_classes="ds-plot",
                                 alt_text=f"{name}: band-mean S_gen and S_perc over time, onset and steering window"),
                        gr.Image(label=f"{name}: affinities per layer x time", type="filepath", interactive=False,
                                 show_label=False, buttons=["download", "fullscreen"], elem_id=f"heatmap-{name}", elem_classes="ds-plot",
                                 alt_text=f"{name}: S_gen and S_perc per layer over time"),
                    ]
        result_json = gr.File(label="Run JSON (settings, onset and steered frames, texts, affinities)",
                              interactive=False)

        def toggle(choice: str):
            zbb = choice == SOURCE_ZBB
            return gr.update(visible=zbb), gr.update(visible=not zbb), gr.update(visible=zbb)

        source.change(toggle, source, [item, user_audio, reply], queue=False, api_visibility="private")

        def load_model(source_name: str, path_text: str,
                       progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - gradio finds it by default value
            """Load a model (and fit its default vector unless a vector path is given)."""
            say = lambda frac, desc: progress(frac, desc=desc)  # noqa: E731
            try:
                with state.lock:
                    m = state.model(source_name, say)
                    lay = default_layer(m.num_layers, m)
                    desc = None
                    if not (path_text or "").strip():
                        _, desc = state.fitted_vector(m, lay, say)
                return (model_banner(m, desc), gr.update(maximum=m.num_layers - 1, value=lay),
                        f"loaded {m.label}")
            except Exception as exc:  # noqa: BLE001 - every failure becomes a message
                msg = _error_message(exc)
                gr.Warning(msg)
                return gr.update(), gr.update(), msg

        load_btn.click(load_model, [model_box, vector_path], [banner, layer, message], api_name="load_model",
                       concurrency_limit=1, concurrency_id="model")

        def run(source_name, vec_path, vec_upload, src, item_id, audio_path, interruption_s, reply_s, layer_i,
                alpha_f, span_i, schedule_name, detector_name, only_speaking_b, seed_i,
                progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - gradio finds it by default value
            """Run the recording unsteered and steered; return every output, or a message on failure."""
            try:
                with state.lock:
                    return _run(state, source_name, vec_path, vec_upload, src, item_id, audio_path, interruption_s,
                                reply_s, layer_i, alpha_f, span_i, schedule_name, detector_name, only_speaking_b,
                                seed_i, progress)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a message, never a traceback
                msg = _error_message(exc)
                gr.Warning(msg)
                return [f"Error: {msg}", gr.update(), None, *([None] * 8), None]

        run_btn.click(run, [model_box, vector_path, vector_file, source, item, user_audio, interruption, reply, layer,
                            alpha, span, schedule, detector, only_speaking, seed],
                      [message, banner, input_audio, *outs["unsteered"], *outs["steered"], result_json],
                      api_name="run", concurrency_limit=1, concurrency_id="model")
    app.queue(default_concurrency_limit=1, max_size=16)
    return app


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, DuplexSteerError):
        return str(exc)
    log.error("demo: unexpected error", exc_info=exc)
    return f"unexpected error ({type(exc).__name__}: {exc}); the details are in the server log"


def _run(state: DemoState, source_name, vec_path, vec_upload, src, item_id, audio_path, interruption_s, reply_s,
         layer_i, alpha_f, span_i, schedule_name, detector_name, only_speaking_b, seed_i, progress) -> list[Any]:
    started = time.time()
    say = lambda frac, desc: progress(frac, desc=desc)  # noqa: E731
    limits = state.limits
    if src == SOURCE_ZBB:
        rec = zbb_recording(item_id, interruption_s, reply_s, limits)
    else:
        rec = user_recording(audio_path, limits)
        rec.onset_s = float(interruption_s)
        rec.info["interruption_s"] = rec.onset_s
    model = state.model(source_name, say)
    layer_i = int(layer_i)
    vector, vector_desc = resolve_vector(state, model, layer_i, vec_upload, vec_path, say)
    steering = Steering(vector, [layer_i], alpha=float(alpha_f), span=int(span_i), schedule=schedule_name)
    if detector_name == "oracle":
        if rec.onset_s is None or rec.onset_s >= rec.duration_s:
            raise DemoError(f"the oracle onset ({rec.onset_s or 0:.2f} s) is past the end of the "
                            f"{rec.duration_s:.2f} s recording; set the interruption time inside it")
        detector = oracle(rec.onset_s)
    elif detector_name in DETECTORS:
        detector = make_detector(detector_name, only_while_model_speaks=bool(only_speaking_b))
    else:
        raise DemoError(f"unknown onset detector {detector_name!r}; choose one of {', '.join(DETECTORS)}")
    say(0.0, "running unsteered + steered conversations")
    prompt = state.prompt(model)
    cmp, aff = run_comparison(model, rec, steering, detector, int(seed_i or 0), prompt)

    say(0.95, "drawing figures")
    out = state.new_run_dir()
    save_audio(out / "input.wav", rec.wav)
    audio = [save_audio(out / f"{name}.wav", cmp.result.model_audio[b]) for b, name in enumerate(("unsteered", "steered"))]
    figures = []
    for b, name in enumerate(("unsteered", "steered")):
        from duplex_steer.probes.plots import plot_heatmaps

        title = f"{name.capitalize()}: band-mean affinities over time"
        figures.append((plot_run_timeline(aff, b, cmp.steered_frames, b == 1, title, out / f"timeline-{name}.png"),
                        plot_heatmaps(aff, out / f"heatmap-{name}.png", item=b)))
    texts = [text_segments(model, cmp.result.text_tokens[b].tolist(), cmp.onset_frames,
                           cmp.steered_frames if b == 1 else []) for b in range(2)]
    record = {
        **cmp.to_json(model.label),
        "is_random": model.is_random,
        "input": {**rec.info, "duration_s": rec.duration_s, "n_samples": len(rec.wav)},
        "vector": {"description": vector_desc, "layers": vector.layers, "meta": vector.meta},
        "seed": int(seed_i or 0),
        "affinities": {"unsteered": aff.to_json(0), "steered": aff.to_json(1)},
    }
    if model.caveat:
        record["note"] = model.caveat  # random weights: a pipeline check; the organism: a toy world
    json_path = out / "result.json"
    json_path.write_text(json.dumps(record, indent=1, allow_nan=False, default=str))

    onset_txt = (", ".join(f"frame {f} ({f * FRAME_S:.2f} s)" for f in cmp.onset_frames)
                 if cmp.onset_frames else "none: the detector did not fire, nothing was steered")
    lines = [*rec.notes,
             f"Done in {time.time() - started:.1f} s. Onset ({detector_name}): {onset_txt}. Steered frames: "
             f"{frames_text(cmp.steered_frames)} (layer {layer_i}, alpha {float(alpha_f):g}, {schedule_name} over "
             f"{int(span_i)} frames).",
             *filter(None, [describe_upload(rec)]),
             f"Vector: {vector_desc}.", f"Conversation start ({prompt_line(prompt)})."]
    if model.is_random:
        lines.append(f"Pipeline check: {PIPELINE_CHECK_NOTE}.")
    (t0, h0), (t1, h1) = figures
    return ["\n".join(lines), model_banner(model, vector_desc), str(out / "input.wav"),
            str(audio[0]), texts[0], str(t0), str(h0), str(audio[1]), texts[1], str(t1), str(h1), str(json_path)]


def launch(model_source: str = "organism", vector: str | Path | None = None, *, host: str = "127.0.0.1",
           port: int | None = None, share: bool = False, device: str | None = None, dtype: Any = None,
           limits: DemoLimits = DEFAULT_LIMITS, fit_dialogues: int = 4, prevent_thread_lock: bool = False,
           quiet: bool = False, voice: str | None = None, text_prompt: str | None = None) -> gr.Blocks:
    """Build and serve the demo. Local only (127.0.0.1) and no public link unless asked."""
    app = build_app(model_source, vector, device=device, dtype=dtype, limits=limits, fit_dialogues=fit_dialogues,
                    voice=voice, text_prompt=text_prompt)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"[demo] warning: serving on {host}: anyone who can reach this machine can use the demo "
              "(there is no login)", file=sys.stderr)
    if share:
        print("[demo] warning: --share creates a public gradio.live link to this machine", file=sys.stderr)
    app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=prevent_thread_lock,
               max_file_size=f"{limits.max_upload_mb:g}mb", show_error=False, ssr_mode=False, quiet=quiet,
               css=CSS, footer_links=["gradio"])
    return app
