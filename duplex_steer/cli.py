"""`duplex-steer` command line: converse, convert, analyze, fit-vector, steer, demo.

Every subcommand prints one clear line on a user error (exit 2), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import DuplexSteerError


def _model_args(p: argparse.ArgumentParser, default: str = "tiny") -> None:
    p.add_argument("--model", default=default, help=f"preset name, local folder or hub repo id (default: {default})")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"], help="weights dtype")


def _load(args: argparse.Namespace):
    import torch

    from .engine import load

    dtype = getattr(torch, args.dtype) if args.dtype else None
    model = load(args.model, device=args.device, dtype=dtype)
    print(f"model: {model.label}", file=sys.stderr)
    return model


def cmd_converse(args: argparse.Namespace) -> int:
    """A full-duplex conversation on a recording: writes the model's audio and text."""
    from .audio import save_audio
    from .engine.conversation import ConversationPrompt, converse

    model = _load(args)
    prompt = ConversationPrompt.personaplex(voice=args.voice_prompt, role=args.role) if args.personaplex_prompt else None
    result = converse(model, args.audio, greedy=args.greedy, seed=args.seed, prompt=prompt, progress=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_audio(out / "model.wav", result.model_audio[0])
    record = {
        "model": model.label, "input": str(args.audio), "frames": int(result.text_tokens.shape[1]),
        "frame_offset": result.frame_offset, "text": result.texts[0], "pieces": result.pieces[0],
        "text_tokens": result.text_tokens[0].tolist(), "model_codes": result.model_codes[0].tolist(),
        "greedy": args.greedy, "seed": args.seed,
    }
    (out / "conversation.json").write_text(json.dumps(record, indent=1))
    print(f"model text: {result.texts[0]!r}")
    print(f"wrote {out / 'model.wav'} and {out / 'conversation.json'}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Write a kyutai-native checkpoint as a HuggingFace-format folder."""
    from .engine.export import export_hf

    model = _load(args)
    path = export_hf(model, args.dst)
    print(f"wrote HuggingFace-format checkpoint to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duplex-steer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("converse", help="run a full-duplex conversation on a recording")
    _model_args(p)
    p.add_argument("--audio", default="audio_fixtures/interruption_example.ogg", help="user recording (any format/rate)")
    p.add_argument("--out", default="runs/converse", help="output folder")
    p.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--personaplex-prompt", action="store_true", help="start with PersonaPlex's voice/role prompt")
    p.add_argument("--voice-prompt", default=None, help="voice prompt recording (with --personaplex-prompt)")
    p.add_argument("--role", default=None, help="role text prompt (with --personaplex-prompt)")
    p.set_defaults(func=cmd_converse)

    p = sub.add_parser("convert", help="convert a checkpoint (e.g. kyutai-native) to a HuggingFace-format folder")
    p.add_argument("src", help="source checkpoint (folder, repo id or preset)")
    p.add_argument("dst", help="destination folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    p.set_defaults(func=cmd_convert, model=None)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "model", None) is None and hasattr(args, "src"):
        args.model = args.src
    try:
        return int(args.func(args) or 0)
    except DuplexSteerError as exc:
        print(f"duplex-steer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
