"""The optional LLM judge against a local stub chat-completions server (127.0.0.1, ephemeral port)."""

import json
import threading
from collections.abc import Callable
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from zbb.judge import JudgeConfig, JudgeError, JudgeVerdict, build_prompt, judge_reply, parse_verdict

ITEM = {
    "id": "penguins-false",
    "subject": "penguins",
    "aliases": ["penguin", "penguins"],
    "truth": False,
    "text": "Penguins, they live in the desert, right?",
}


def _completion(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


@contextmanager
def stub_server(respond: Callable[[dict], tuple[int, bytes]]):
    """Serve POSTs with ``respond(request_json) -> (status, body)``; record requests; always shut down."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            status, payload = respond(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_verdict_and_request_shape(monkeypatch):
    monkeypatch.setenv("ZBB_JUDGE_API_KEY", "test-key")
    with stub_server(lambda body: (200, _completion('{"correct": true, "heard_subject": false}'))) as (
        url,
        seen,
    ):
        verdict = judge_reply(
            ITEM, "No, they live in Antarctica.", JudgeConfig(url=url, model="stub-judge", timeout_s=5)
        )
    assert verdict == JudgeVerdict(correct=True, heard_subject=False)
    assert len(seen) == 1
    assert seen[0]["path"] == "/v1/chat/completions"
    assert seen[0]["auth"] == "Bearer test-key"
    body = seen[0]["body"]
    assert body["model"] == "stub-judge" and body["temperature"] == 0
    prompt = body["messages"][0]["content"]
    assert "Penguins, they live in the desert, right?" in prompt
    assert "FALSE" in prompt and "No, they live in Antarctica." in prompt


def test_no_key_means_no_authorization_header(monkeypatch):
    monkeypatch.delenv("ZBB_JUDGE_API_KEY", raising=False)
    fenced = '```json\n{"correct": false, "heard_subject": true}\n```'
    with stub_server(lambda body: (200, _completion(fenced))) as (url, seen):
        verdict = judge_reply(ITEM, "Yes", JudgeConfig(url=url + "/chat/completions", model="m", timeout_s=5))
    assert verdict == JudgeVerdict(correct=False, heard_subject=True)
    assert seen[0]["auth"] is None and seen[0]["path"] == "/v1/chat/completions"


@pytest.mark.parametrize(
    ("status", "payload", "message"),
    [
        (500, b'{"error": "boom"}', "answered HTTP 500"),
        (200, b"not json at all", "did not return a chat-completions response"),
        (200, b'{"choices": []}', "did not return a chat-completions response"),
        (200, _completion("I think it is correct."), "holds no JSON object"),
        (200, _completion('{"correct": "yes", "heard_subject": true}'), "lacks boolean"),
    ],
)
def test_bad_responses_raise_one_clear_error(status, payload, message):
    with stub_server(lambda body: (status, payload)) as (url, _):
        with pytest.raises(JudgeError, match=message):
            judge_reply(ITEM, "Yes", JudgeConfig(url=url, model="m", timeout_s=5))


def test_unreachable_endpoint():
    with stub_server(lambda body: (200, b"")) as (url, _):
        pass  # server is shut down and its port closed on exit
    with pytest.raises(JudgeError, match="unreachable or too slow"):
        judge_reply(ITEM, "Yes", JudgeConfig(url=url, model="m", timeout_s=2))


def test_timeout():
    release = threading.Event()

    def slow(body):
        release.wait(3)
        return 200, _completion('{"correct": true, "heard_subject": true}')

    with stub_server(slow) as (url, _):
        try:
            with pytest.raises(JudgeError, match="timeout 0.3 s"):
                judge_reply(ITEM, "Yes", JudgeConfig(url=url, model="m", timeout_s=0.3))
        finally:
            release.set()


def test_prompt_and_parse_without_network():
    prompt = build_prompt(ITEM, 'He said "no"')
    assert "$" not in prompt
    assert "He said 'no'" in prompt
    assert parse_verdict('{"correct": false, "heard_subject": false}') == JudgeVerdict(False, False)
    with pytest.raises(JudgeError, match="not valid JSON"):
        parse_verdict("{correct: true}")
