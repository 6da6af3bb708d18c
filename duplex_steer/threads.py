"""How many CPU threads a toolkit process uses, chosen so that processes running side by side do not collapse.

torch's default (one thread per core, OpenMP workers that spin while they wait) makes two processes on a
2-core machine take 3-4x as long as one each: their spinning workers fight over the same cores. The policy:

- `OMP_WAIT_POLICY=PASSIVE` (idle OpenMP workers sleep instead of spinning), set at process start by every
  command's entry point (`passive_wait`) unless the environment already says otherwise; OpenMP reads it
  once, when torch loads, so it must be set before `import torch`.
- Small models (the organism, `tiny`, folders under 64 MB of weights) run on 1 thread: their matrices are
  too small for a second thread to pay for its synchronisation, and N of them then share N cores cleanly.
- Larger models get the cores this process may use (affinity and cgroup quota), less the cores other
  processes keep busy according to the 1-minute load average, at least 1.
- `--threads N` (every command, `add_threads_arg`) overrides the policy; otherwise an `OMP_NUM_THREADS`
  set in the environment is respected.

What passive waiting costs: nothing on one thread, but a larger model on several threads wakes its
workers for every small parallel region. `mid` on 2 threads steps in about 32 / 50 ms (batch 1 / 8) alone
with passive waiting against 16 / 31 ms spinning, while two such processes at once take 28 / 55 ms each
passive against 41-64 / 82-93 ms spinning (`benchmarks/wait_policy.py`). A process that has the CPU to
itself runs a larger model faster with `OMP_WAIT_POLICY=ACTIVE` in its environment (respected here).

`configure_threads` applies the choice: before torch is imported it sets `OMP_NUM_THREADS` / `MKL_NUM_THREADS`
(torch reads them when it starts, and nothing here imports torch, so `--help` stays fast); if torch is
already imported it calls `torch.set_num_threads` as well.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
from pathlib import Path

SMALL_MODELS = frozenset({"organism", "tiny", "tiny-personaplex"})
SMALL_WEIGHTS_BYTES = 64 * 2**20  # a checkpoint folder with less than this in weights counts as small
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
THREADS_HELP = ("CPU threads for torch (default: 1 for small models such as the organism, else the free cores; "
                "OMP_NUM_THREADS if set). Several processes side by side should share the cores: see "
                "duplex_steer.threads")


def passive_wait() -> None:
    """Make idle OpenMP workers sleep rather than spin (unless OMP_WAIT_POLICY is already set).

    Call it first thing in a process's entry point: OpenMP reads the setting once, when torch loads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cpu_name() -> str:
    """The processor's model name (/proc/cpuinfo), else what platform knows: benchmarks and training records
    name the machine with it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota if one is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def is_small_model(model_size_hint: str | os.PathLike[str] | int | None) -> bool:
    """Whether a model is small enough that one thread is its best choice.

    The hint is a `--model` value (a preset name, or a folder whose weight files are measured), or a
    parameter count (small below 10 M); None (no model: a command that only reads files) counts as small.
    """
    if model_size_hint is None:
        return True
    if isinstance(model_size_hint, int):
        return model_size_hint < 10_000_000
    name = str(model_size_hint)
    if name in SMALL_MODELS:
        return True
    path = Path(name).expanduser()
    if path.is_dir():
        weights = sum(f.stat().st_size for f in path.glob("*.safetensors"))
        return 0 < weights < SMALL_WEIGHTS_BYTES
    return False


def default_threads(model_size_hint: str | os.PathLike[str] | int | None = None) -> int:
    """The policy's thread count (see the module docstring); ignores --threads and the environment."""
    if is_small_model(model_size_hint):
        return 1
    cores = available_cores()
    others_busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, round(cores - others_busy)))


def threads_from_env() -> int | None:
    """A positive OMP_NUM_THREADS from the environment, else None."""
    try:
        value = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def configure_threads(n: int | None = None, model_size_hint: str | os.PathLike[str] | int | None = None) -> int:
    """Set the process's torch thread count and return it: `n` if given, else OMP_NUM_THREADS from the
    environment, else the policy for this model size (`default_threads`)."""
    if n is not None and n < 1:
        raise ValueError(f"thread count must be at least 1, got {n}")
    threads = n or threads_from_env() or default_threads(model_size_hint)
    for var in THREAD_ENV:
        os.environ[var] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (--threads, zbb's --workers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_threads_arg(parser: argparse.ArgumentParser, help: str = THREADS_HELP) -> None:
    """--threads N (default None: the policy, see `configure_threads`)."""
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N", help=help)


def add_threads_to_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Give every subcommand of a CLI the same --threads option (one definition for all commands)."""
    for parser in subparsers.choices.values():
        if not any("--threads" in action.option_strings for action in parser._actions):
            add_threads_arg(parser)


def configure_from_args(args: argparse.Namespace) -> int:
    """Apply --threads (or the policy for --model) from parsed arguments; returns the thread count."""
    return configure_threads(getattr(args, "threads", None), getattr(args, "model", None))


__all__ = ["SMALL_MODELS", "add_threads_arg", "add_threads_to_subcommands", "available_cores", "configure_from_args", "configure_threads",
           "default_threads", "is_small_model", "passive_wait", "positive_int", "threads_from_env"]
