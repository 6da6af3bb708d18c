"""`duplex-steer demo`: serve the interactive Gradio demo (demos/app.py), on 127.0.0.1 by default."""

from __future__ import annotations

import argparse
import importlib
import socket
from types import ModuleType

from .errors import DuplexSteerError
from .resources import DEMOS_PACKAGE
from .threads import add_threads_arg


class DemoUnavailable(DuplexSteerError):
    """The demo cannot start (its code is not there, the port is busy, ...)."""


def app_module() -> ModuleType:
    """`demos.app`, the demo's code: a top-level package of the repository, installed with duplex-steer."""
    try:
        return importlib.import_module(f"{DEMOS_PACKAGE}.app")
    except ModuleNotFoundError as exc:
        if exc.name not in (DEMOS_PACKAGE, f"{DEMOS_PACKAGE}.app"):
            raise
    raise DemoUnavailable(f"the demo's package {DEMOS_PACKAGE!r} is not installed; reinstall duplex-steer "
                          "(pip install . in a checkout of the repository)")


def port_is_free(host: str, port: int) -> bool:
    """Whether (host, port) can be bound now (checked before the slow model loading)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except OSError:
        return True  # let the server report an unusable host
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the app (load the model, fit the default vector unless --vector) and serve it until Ctrl-C."""
    import torch

    if not port_is_free(args.host, args.port):
        raise DemoUnavailable(f"port {args.port} on {args.host} is in use; pick another with --port")
    app = app_module()
    limits = app.DemoLimits(max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    try:
        app.launch(args.model, args.vector, host=args.host, port=args.port, share=args.share, device=args.device,
                   dtype=dtype, limits=limits, fit_dialogues=args.fit_dialogues)
    except OSError as exc:  # gradio: port busy / cannot bind
        raise DemoUnavailable(f"cannot serve on {args.host}:{args.port} ({exc}); pick another --port") from None
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `demo` subcommand to the `duplex-steer` parser."""
    p = subparsers.add_parser("demo", help="interactive web demo: unsteered vs steered on one recording")
    p.add_argument("--model", default="organism", help="preset name, local folder or hub repo id (default: organism)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"], help="weights dtype")
    p.add_argument("--vector", default=None,
                   help="perception vector file (default: fit a quick one on 4 dialogues at start-up)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also create a public gradio.live link (off by default)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="upload size limit (default 20 MB)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="recording length limit (default 60 s)")
    p.add_argument("--fit-dialogues", type=int, default=4, help="dialogues for the default vector (default 4)")
    add_threads_arg(p)
    p.set_defaults(func=cmd_demo)
    return p
