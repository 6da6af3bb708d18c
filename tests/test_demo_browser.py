"""The demo page in a real browser: headless Chromium driven over the Chrome DevTools Protocol.

Loads the page, clicks Run on the default ZBB item, waits for both output players and all four
plots, checks the DOM and the fetched audio, and saves a full-page screenshot under the pytest
temporary folder (its path is printed). Then records from the microphone: Chromium's fake capture
device plays a speech file, Gradio's recorder records it, and the run must have received that speech.
Needs Debian's `chromium` (scripts/setup.sh --test).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from duplex_steer import PIPELINE_CHECK_NOTE

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium, or "
                                                "scripts/setup.sh --test); CI installs it"),
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting'",
                               "ignore:The copy keyword is deprecated"),
]
websocket = pytest.importorskip("websocket", reason="websocket-client (a dependency of nnsight) is needed for CDP")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-port=0",
         "--window-size=1400,1000"]
WIDTH = 1400


class Browser:
    """Just enough of the Chrome DevTools Protocol: evaluate JavaScript, resize, screenshot."""

    def __init__(self, executable: str, profile: Path, extra_flags: tuple[str, ...] = ()):
        log = profile / "chromium.log"
        with log.open("wb") as sink:
            # a session of its own, so that close() ends chromium's helper processes too
            self.proc = subprocess.Popen([executable, *FLAGS, *extra_flags, f"--user-data-dir={profile}", "about:blank"],
                                         stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 90  # a cold first start on a loaded CI machine is slow
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"chromium did not open its DevTools port; its output ends:\n{tail}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def screenshot(self, path: Path) -> Path:
        height = int(self.js("Math.ceil(document.documentElement.scrollHeight)"))
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=height, deviceScaleFactor=1, mobile=False)
        time.sleep(1.0)  # let the layout settle at the new size
        shot = self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the whole group: helpers write to the profile until they end
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(10)
                break
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module")
def url():
    from duplex_steer.demo import app_module

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = app_module().launch("tiny", port=port, fit_dialogues=2, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()
        torch.set_num_threads(threads)


@pytest.fixture()
def browser():
    with tempfile.TemporaryDirectory(prefix="duplex-steer-chromium-", ignore_cleanup_errors=True) as profile:
        b = Browser(CHROMIUM, Path(profile))
        try:
            yield b
        finally:
            b.close()


RUN_BUTTON = "Array.from(document.querySelectorAll('button')).find(b => b.textContent.includes('Run unsteered'))"
OUTPUTS = """(() => {
  const out = {};
  for (const n of ['unsteered', 'steered']) {
    const link = document.querySelector('#audio-' + n + ' a[download]');
    out['audio_' + n] = link ? link.href : null;
    out['waveform_' + n] = !!document.querySelector('#audio-' + n + ' [data-testid^="waveform-"]');
    for (const k of ['timeline', 'heatmap']) {
      const img = document.querySelector('#' + k + '-' + n + ' img');
      out[k + '_' + n] = img && img.complete && img.naturalWidth > 0 ? [img.src, img.naturalWidth, img.naturalHeight] : null;
    }
    out['text_' + n] = (document.querySelector('#text-' + n) || {}).innerText || '';
  }
  const msg = document.querySelector('#messages textarea');
  out.message = msg ? msg.value : '';
  out.page = document.body.innerText;
  return out;
})()"""
FETCH = """(async () => { const r = await fetch(%s); const b = new Uint8Array(await r.arrayBuffer());
  return [r.status, b.length, String.fromCharCode(...b.slice(0, 4))]; })()"""


def test_page_runs_a_zbb_item_and_shows_both_outputs(url, browser, tmp_path_factory):
    browser.call("Page.enable")
    browser.call("Page.navigate", url=url)
    browser.wait_for(f"!!{RUN_BUTTON}", 60, "the Run button")
    assert PIPELINE_CHECK_NOTE in browser.js("document.body.innerText")
    browser.js(f"{RUN_BUTTON}.click()")
    done = ("(() => { const m = document.querySelector('#messages textarea'); "
            "return m && /^(Done|Error)/.test(m.value) && !!document.querySelector('#heatmap-steered img'); })()")
    browser.wait_for(done, 120, "the run to finish")
    state = browser.wait_for(f"(() => {{ const s = {OUTPUTS}; "
                             "return ['unsteered', 'steered'].every(n => s['audio_' + n] && s['timeline_' + n] "
                             "&& s['heatmap_' + n]) ? s : null; })()", 30, "both players and all four plots")

    assert state["message"].startswith("Done"), state["message"]
    assert "frame 40 (3.20 s)" in state["message"]  # the default interruption time, oracle onset
    sizes = []
    for name in ("unsteered", "steered"):
        assert state[f"waveform_{name}"], f"no {name} waveform player"
        assert state[f"audio_{name}"].endswith(f"{name}.wav")
        status, size, magic = browser.js(FETCH % json.dumps(state[f"audio_{name}"]))
        assert (status, magic) == (200, "RIFF") and size > 100_000
        sizes.append(size)
        assert state[f"timeline_{name}"][1] >= 600 and state[f"heatmap_{name}"][1] >= 600
        assert "onset 3.20 s" in state[f"text_{name}"]
    assert sizes[0] == sizes[1]  # both outputs have the input's length
    assert "steered frames" in state["text_steered"]
    assert PIPELINE_CHECK_NOTE in state["page"]

    shot = browser.screenshot(tmp_path_factory.mktemp("demo-screenshot") / "demo.png")
    print(f"screenshot: {shot}")
    from PIL import Image

    with Image.open(shot) as img:
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.shape[1] == WIDTH and rgb.shape[0] > 1500
    assert rgb.std() > 20 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 1000  # not blank: text, players, plots
    # the plots' viridis heatmaps are on the page: many dark purple-blue pixels
    viridis_dark = (rgb[..., 0] < 90) & (rgb[..., 1] < 60) & (rgb[..., 2] > 80)
    assert viridis_dark.sum() > 20_000


# --- the microphone: Chromium's fake capture device plays a speech file into Gradio's recorder -------------
RECORD_SECONDS = 5.0  # past the default interruption time (3.2 s), the oracle onset
VISIBLE = "Array.from(document.querySelectorAll(%s)).filter(b => b.offsetParent !== null).find(b => %s)"


def click_when_visible(browser: Browser, selector: str, predicate: str, what: str, timeout: float = 30) -> None:
    """Click the first visible element matching selector and predicate, polling until it is there.

    One expression finds and clicks, so an element that exists but is not laid out yet (Gradio renders
    the recorder's buttons in steps) is waited for rather than clicked as undefined."""
    found = VISIBLE % (selector, predicate)
    browser.wait_for(f"(() => {{ const b = {found}; if (!b) return false; b.click(); return true; }})()", timeout, what)


@pytest.fixture()
def microphone_speech(tmp_path) -> Path:
    """A 16-bit PCM WAV for the fake microphone: "Tell me about music.", 1.5 s of silence, a ZBB question."""
    import soundfile as sf

    from duplex_steer.audio import SAMPLE_RATE
    from duplex_steer.speech.engines import FliteTTS
    from duplex_steer.speech.tts import TTSError

    try:
        tts = FliteTTS("slt")
        parts = [tts.synthesize("Tell me about music."), np.zeros(int(1.5 * SAMPLE_RATE), np.float32),
                 tts.synthesize("Penguins, they live in icy places, right?"), np.zeros(SAMPLE_RATE // 2, np.float32)]
    except TTSError as exc:
        pytest.skip(str(exc))
    path = tmp_path / "microphone.wav"
    sf.write(path, np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return path


def test_microphone_recording_reaches_the_run(url, microphone_speech):
    """Record with Gradio's microphone recorder (fed from a file), run: the server got that speech.

    Chromium loops the file and the recording may start anywhere in it, so the check is the loudness
    envelope against the looped file at the best shift, never the model's reply (a tiny random model here)."""
    from urllib.parse import unquote

    from duplex_steer.audio import load_audio, rms_per_frame

    flags = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={microphone_speech}")
    with tempfile.TemporaryDirectory(prefix="duplex-steer-chromium-", ignore_cleanup_errors=True) as profile:
        browser = Browser(CHROMIUM, Path(profile), flags)
        try:
            browser.call("Page.enable")
            browser.call("Page.navigate", url=url)
            browser.wait_for(f"!!{RUN_BUTTON}", 60, "the Run button")
            click_when_visible(browser, "'input[type=radio]'", "b.value.startsWith('Your recording')",
                               "the 'Your recording' choice")
            click_when_visible(browser, "'#user-audio button'", "b.getAttribute('aria-label') === 'Record audio'",
                               "the recording's 'Record audio' source button")
            click_when_visible(browser, "'#user-audio button'", "b.classList.contains('record-button')",
                               "the Record button")
            stop_button = VISIBLE % ("'#user-audio button'", "b.classList.contains('stop-button')")
            browser.wait_for(f"!!{stop_button}", 30, "recording to start")
            time.sleep(RECORD_SECONDS)
            click_when_visible(browser, "'#user-audio button'", "b.classList.contains('stop-button')",
                               "the Stop button")
            browser.wait_for("(document.querySelector('#user-audio a[download]') || {}).href", 60,
                             "the recording uploaded to the server")
            browser.js(f"{RUN_BUTTON}.click()")
            message = browser.wait_for("(() => { const m = document.querySelector('#messages textarea'); "
                                       "return m && /^(Done|Error)/m.test(m.value) && m.value; })()", 120, "the run to finish")
            assert "\nError" not in "\n" + message, message
            state = browser.wait_for(f"(() => {{ const s = {OUTPUTS}; "
                                     "return ['unsteered', 'steered'].every(n => s['audio_' + n] && s['timeline_' + n] "
                                     "&& s['heatmap_' + n]) ? s : null; })()", 30, "both players and all four plots")
            links = browser.js("Array.from(document.querySelectorAll('a[download]')).map(a => a.href)")
        finally:
            browser.close()

    message = state["message"]
    assert message.startswith("Done"), message  # no note before it (e.g. about the level)
    assert "frame 40 (3.20 s)" in message  # the default interruption time, oracle onset
    fed = Path(unquote(next(link for link in links if link.endswith("/input.wav")).split("file=", 1)[1]))
    heard = load_audio(fed)  # the server is this process: the input as fed to the model, on disk
    line = next(x for x in message.splitlines() if x.startswith("Input: "))
    assert line.startswith(f"Input: audio.wav, {len(heard) / 24_000:.2f} s at ") and len(heard) >= 4 * 24_000, line
    for name in ("unsteered", "steered"):
        assert state[f"waveform_{name}"] and state[f"audio_{name}"].endswith(f"{name}.wav")
    # the speech file, not the fake device's beep or silence: the envelope matches the looped file somewhere
    got, source = rms_per_frame(heard, 480), rms_per_frame(load_audio(microphone_speech), 480)
    looped = np.concatenate([source, source, source])
    best = max(np.corrcoef(got, looped[k : k + len(got)])[0, 1] for k in range(len(source)))
    assert best > 0.8, f"the recording does not follow the microphone file (best envelope correlation {best:.2f})"
