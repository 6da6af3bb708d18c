"""The demo page in a real browser: headless Chromium driven over the Chrome DevTools Protocol.

Loads the page, clicks Run on the default ZBB item, waits for both output players and all four
plots, checks the DOM and the fetched audio, and saves a full-page screenshot under the pytest
temporary folder (its path is printed). Needs Debian's `chromium` (scripts/setup.sh --test).
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
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

    def __init__(self, executable: str, profile: Path):
        self.proc = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 30
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
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
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


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
    with tempfile.TemporaryDirectory(prefix="duplex-steer-chromium-") as profile:
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
