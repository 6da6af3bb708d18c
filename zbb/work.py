"""How a ZBB run's work is cut, so that cutting it never changes a result.

A run's work is one (item, condition, repetition) per scenario, grouped by (item, repetition): a
*unit* is all conditions of one item and repetition. Three rules make results independent of how
the work is cut into batches, shards and resumed pieces:
- randomness is keyed to the unit: every scenario of (item, repetition) samples with the noise key
  `noise_key(seed, item, repetition)` (`duplex_steer.engine.noise`), so an item's conditions share
  one noise stream, and a scenario draws the same in any batch, shard or resumed run;
- batches hold whole units: a batch takes units while they fit in `batch_size` scenarios, and a unit
  larger than `batch_size` (more conditions than the batch size) forms a batch on its own, which then
  grows to fit it;
- shards take whole units (every WORLD-th unit of the full work list), so a unit never spans shards.
`batch_size` therefore only changes speed and memory, and is not part of a run's identity: a run
folder can be resumed with another batch size, while any other differing option is named.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from duplex_steer.engine.noise import key_for

Work = tuple[dict[str, Any], str, int]  # (item, condition, repetition)
NOT_IDENTITY = ("batch_size", "device")  # options that change speed, never results


def unit_of(work: Work) -> tuple[str, int]:
    """(item id, repetition): the scenarios that share their sampling noise."""
    return work[0]["id"], int(work[2])


def units(work: Iterable[Work]) -> list[list[Work]]:
    """The work grouped into units, in first-seen order (a unit's scenarios keep their order)."""
    grouped: dict[tuple[str, int], list[Work]] = {}
    for w in work:
        grouped.setdefault(unit_of(w), []).append(w)
    return list(grouped.values())


def shard_units(work: Sequence[Work], rank: int, world: int) -> list[Work]:
    """This shard's part of the FULL work list: every `world`-th unit from `rank` on, whole."""
    return [w for i, unit in enumerate(units(work)) if i % world == rank for w in unit]


def item_batches(work: Sequence[Work], batch_size: int) -> Iterator[list[Work]]:
    """Batches of whole units, at most `batch_size` scenarios unless one unit alone is larger."""
    batch: list[Work] = []
    for unit in units(work):
        if batch and len(batch) + len(unit) > batch_size:
            yield batch
            batch = []
        batch.extend(unit)
    if batch:
        yield batch


def slices(work: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of at most `size` (FDB imports, whose items are each one recording)."""
    for i in range(0, len(work), size):
        yield list(work[i : i + size])


def launcher_shard() -> tuple[int, int]:
    """(rank, world size) from torchrun / accelerate / Ray-style environment variables, else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    return rank, world


def noise_key(seed: int, item_id: str, repetition: int) -> int:
    """The sampling-noise key of one (item, repetition) in a run with `seed`."""
    return key_for("zbb", int(seed), item_id, int(repetition))


def noise_keys(seed: int, batch: Sequence[Work]) -> list[int]:
    """One noise key per scenario of a batch."""
    return [noise_key(seed, *unit_of(w)) for w in batch]


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """'option: saved -> wanted' for each option that differs, ignoring those in NOT_IDENTITY."""
    old, new = _flatten(saved), _flatten(wanted)
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new))
            if key not in NOT_IDENTITY and old.get(key) != new.get(key)]


__all__ = ["NOT_IDENTITY", "Work", "config_differences", "item_batches", "launcher_shard", "slices", "noise_key", "noise_keys",
           "shard_units", "unit_of", "units"]
