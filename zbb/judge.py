"""Optional LLM judge for ZBB replies, through any OpenAI-compatible chat-completions endpoint.

Off by default: the rule-based scorer in ``zbb.scoring`` needs no network. The user names the
endpoint and model; the API key, if any, is read from the environment variable ``ZBB_JUDGE_API_KEY``
(never from the command line, so it stays out of shell history and logs). The prompt lives in
``zbb/prompts/judge.md`` ($-placeholders: question, subject, truth_word, reply) and asks for
{"correct": bool, "heard_subject": bool}. Only the standard library is used (urllib).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

PROMPT_PATH = Path(__file__).with_name("prompts") / "judge.md"
API_KEY_ENV = "ZBB_JUDGE_API_KEY"
DEFAULT_TIMEOUT_S = 60.0


class JudgeError(RuntimeError):
    """The judge endpoint failed or answered something other than the expected JSON verdict."""


@dataclass(frozen=True)
class JudgeConfig:
    """Where and how to ask: ``url`` is the chat-completions URL or its base (".../v1")."""

    url: str
    model: str
    api_key_env: str = API_KEY_ENV
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def endpoint(self) -> str:
        """The full chat-completions URL ("/chat/completions" appended to a base URL)."""
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


@dataclass(frozen=True)
class JudgeVerdict:
    """The judge's reading of one reply."""

    correct: bool
    heard_subject: bool


def build_prompt(item: Mapping[str, Any], reply: str, template_path: Path = PROMPT_PATH) -> str:
    """Fill the judge prompt for one item and reply."""
    template = Template(template_path.read_text(encoding="utf-8"))
    return template.substitute(
        question=item["text"],
        subject=item["subject"],
        truth_word="TRUE" if item["truth"] else "FALSE",
        reply=reply.replace('"', "'"),
    )


def parse_verdict(content: str) -> JudgeVerdict:
    """Read {"correct": bool, "heard_subject": bool} from the model's message (code fences tolerated)."""
    match = re.search(r"\{.*\}", content, flags=re.DOTALL)
    if match is None:
        raise JudgeError(f"judge answer holds no JSON object: {content[:200]!r}")
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError as err:
        raise JudgeError(f"judge answer is not valid JSON ({err.msg}): {content[:200]!r}") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), bool) for k in ("correct", "heard_subject")
    ):
        raise JudgeError(f"judge answer lacks boolean 'correct' and 'heard_subject': {content[:200]!r}")
    return JudgeVerdict(correct=data["correct"], heard_subject=data["heard_subject"])


def judge_reply(item: Mapping[str, Any], reply: str, config: JudgeConfig) -> JudgeVerdict:
    """Ask the configured endpoint for a verdict on one reply; raise JudgeError on any failure."""
    body = {
        "model": config.model,
        "messages": [{"role": "user", "content": build_prompt(item, reply)}],
        "temperature": 0,
    }
    headers = {"Content-Type": "application/json"}
    api_key = os.environ.get(config.api_key_env)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(
        config.endpoint, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
    )
    where = f"judge at {config.endpoint}"
    try:
        with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        detail = err.read(300).decode("utf-8", "replace") if err.fp else ""
        raise JudgeError(f"{where} answered HTTP {err.code} {err.reason}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise JudgeError(
            f"{where} unreachable or too slow ({reason}; timeout {config.timeout_s:g} s)"
        ) from None
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
        raise JudgeError(f"{where} did not return a chat-completions response: {raw[:200]!r}") from None
    if not isinstance(content, str):
        raise JudgeError(f"{where} returned a message without text content")
    return parse_verdict(content)


__all__ = [
    "API_KEY_ENV",
    "PROMPT_PATH",
    "JudgeConfig",
    "JudgeError",
    "JudgeVerdict",
    "build_prompt",
    "judge_reply",
    "parse_verdict",
]
