"""The `--voice` / `--text-prompt` options every command that runs a conversation shares.

Defined once here; commands call `add_prompt_args(parser)`, `check_prompt_args(args)` before the
model loads, and `prompt_from_args(model, args)` after (see `engine.prompt.build_prompt`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine.prompt import ConversationPrompt

VOICE_HELP = ("PersonaPlex voice prompt: a name from the checkpoint's voices.tgz (NATF0-3, NATM0-3, VARF0-4, "
              "VARM0-4), a voice .pt file, or a recording (WAV, normalised to -24 LUFS); 'none' for no voice. "
              "Default: NATF0 for PersonaPlex-shaped models (user heads), none otherwise")
TEXT_PROMPT_HELP = ("role text prompt, fed one token per frame as '<system> ... <system>'; 'none' for no role. "
                    "Default: PersonaPlex's teacher role for PersonaPlex-shaped models, none otherwise")


def add_prompt_args(parser: argparse.ArgumentParser) -> None:
    """Add --voice and --text-prompt (old spellings --voice-prompt and --role still work)."""
    parser.add_argument("--voice", "--voice-prompt", dest="voice", default=None, metavar="VOICE", help=VOICE_HELP)
    parser.add_argument("--text-prompt", "--role", dest="text_prompt", default=None, metavar="TEXT",
                        help=TEXT_PROMPT_HELP)


def check_prompt_args(args: argparse.Namespace) -> None:
    """Check --voice before anything expensive: files must exist and .pt files be voice files."""
    from .engine.prompt import check_voice_arg

    check_voice_arg(getattr(args, "voice", None))


def prompt_from_args(model, args: argparse.Namespace) -> ConversationPrompt | None:
    """The conversation start `model` runs with under these options (None: no prompt)."""
    from .engine.prompt import build_prompt

    return build_prompt(model, getattr(args, "voice", None), getattr(args, "text_prompt", None))


def prompt_line(prompt: ConversationPrompt | None) -> str:
    """One line for logs and report headers."""
    if prompt is None:
        return "prompt: none"
    rec = prompt.record()
    voice = f"{rec['voice']} (sha256 {rec['voice_sha256']})" if rec["voice"] else "none"
    return f"prompt: voice {voice}; role {rec['text_prompt']!r}"


def load_with_prompt(args: argparse.Namespace):
    """Check --voice, load the model (`model_args.load_from_args`), and build the conversation start its
    --voice / --text-prompt (or the model's defaults) give; returns (model, prompt)."""
    import sys

    from .model_args import load_from_args

    check_prompt_args(args)  # a bad --voice fails before the model loads
    model = load_from_args(args)
    prompt = prompt_from_args(model, args)
    print(prompt_line(prompt), file=sys.stderr)
    return model, prompt
