"""duplex_steer.threads: the thread policy, --threads on every command, and fast `--help` (no torch)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from duplex_steer import threads
from duplex_steer.cli import build_parser as steer_parser
from zbb.cli import build_parser as zbb_parser


@pytest.fixture
def clean_env(monkeypatch):
    """No thread settings in the environment; restore torch's thread count afterwards."""
    import torch

    before = torch.get_num_threads()
    for var in (*threads.THREAD_ENV, "OMP_WAIT_POLICY"):
        monkeypatch.delenv(var, raising=False)
    yield monkeypatch
    torch.set_num_threads(before)


def test_small_models_get_one_thread(clean_env):
    for hint in ("organism", "tiny", "tiny-personaplex", None, 1_900_000):
        assert threads.default_threads(hint) == 1


def test_large_models_get_the_cores_not_kept_busy(clean_env):
    clean_env.setattr(threads, "available_cores", lambda: 8)
    clean_env.setattr(os, "getloadavg", lambda: (2.2, 0.0, 0.0))
    assert threads.default_threads("mid") == 6
    clean_env.setattr(os, "getloadavg", lambda: (30.0, 0.0, 0.0))
    assert threads.default_threads("kyutai/moshiko-pytorch-bf16") == 1
    clean_env.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert threads.default_threads(7_000_000_000) == 8


def test_folder_size_decides(clean_env, tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1000)
    assert threads.is_small_model(tmp_path)
    with open(tmp_path / "model.safetensors", "r+b") as f:
        f.truncate(threads.SMALL_WEIGHTS_BYTES + 1)
    assert not threads.is_small_model(tmp_path)
    assert not threads.is_small_model(tmp_path / "missing")  # a hub id or unknown name: large


def test_configure_order_explicit_then_env_then_policy(clean_env):
    import torch

    assert threads.configure_threads(None, "organism") == 1
    assert os.environ["OMP_NUM_THREADS"] == "1" and torch.get_num_threads() == 1
    assert threads.configure_threads(3, "organism") == 3
    assert os.environ["MKL_NUM_THREADS"] == "3" and torch.get_num_threads() == 3
    clean_env.setenv("OMP_NUM_THREADS", "2")
    assert threads.configure_threads(None, "organism") == 2
    with pytest.raises(ValueError, match="at least 1"):
        threads.configure_threads(0)


def test_passive_wait_respects_the_environment(clean_env):
    threads.passive_wait()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    clean_env.setenv("OMP_WAIT_POLICY", "ACTIVE")
    threads.passive_wait()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("build", [steer_parser, zbb_parser], ids=["duplex-steer", "zbb"])
def test_every_command_takes_threads(build):
    for name, sub in subcommands(build()).items():
        found = [a for a in sub._actions if "--threads" in a.option_strings]
        assert len(found) == 1, name
        assert (found[0].type, found[0].default, found[0].dest) == (threads.positive_int, None, "threads"), name
    with pytest.raises(SystemExit):
        build().parse_args(["demo" if build is steer_parser else "items", "--threads", "0"])


def test_help_imports_neither_torch_nor_transformers():
    code = ("import contextlib, io, json, sys\n"
            "from duplex_steer.cli import main as a\nfrom zbb.cli import main as b\n"
            "for main, argv in ((a, ['--help']), (a, ['analyze', '--help']), (b, ['--help']), (b, ['run', '--help'])):\n"
            "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "        main(argv)\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'librosa') if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
