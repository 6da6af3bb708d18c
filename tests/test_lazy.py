"""duplex_steer.lazy: names loaded on first use, the collector paused for heavy imports, and a cold
start that imports only what a step needs."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import pytest

from duplex_steer.lazy import gc_paused, lazy_names


def test_names_load_on_first_use_and_stay_cached():
    namespace: dict[str, object] = {}
    get, listing = lazy_names("json", {"JSONDecoder": "decoder", "Mapping": "collections.abc"}, namespace)
    assert namespace == {}
    import collections.abc
    import json.decoder

    assert get("JSONDecoder") is json.decoder.JSONDecoder  # relative to the package
    assert get("Mapping") is collections.abc.Mapping  # absolute (a dotted module)
    assert namespace == {"JSONDecoder": json.decoder.JSONDecoder, "Mapping": collections.abc.Mapping}
    assert listing() == ["JSONDecoder", "Mapping"]
    with pytest.raises(AttributeError, match="module 'json' has no attribute 'missing'"):
        get("missing")


@pytest.fixture
def restore_gc():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_gc_paused_disables_the_collector_and_restores_it(restore_gc):
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_gc_paused_leaves_a_disabled_collector_disabled(restore_gc):
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_cold_start_imports_only_what_a_step_needs():
    """A plain import pulls in nothing heavy; loading the organism and stepping it imports neither
    transformers (the engine's modules are its own; the organism has no Mimi), nor torch._dynamo (which
    torch's initialisers on the meta device pull in, ~1 s), nor any of the analysis, audio, steering or
    benchmark packages, and leaves the garbage collector enabled."""
    code = (
        "import gc, json, sys\nimport duplex_steer\n"
        "plain = sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules)\n"
        "import torch\n"
        "model = duplex_steer.load('organism')\n"
        "model.session(batch_size=1, seed=0).step(torch.zeros(1, model.spec.num_audio_codebooks, dtype=torch.long))\n"
        "heavy = ('librosa', 'matplotlib', 'nnsight', 'sklearn', 'torch._dynamo', 'zbb', 'duplex_steer.steering',\n"
        "         'duplex_steer.probes', 'duplex_steer.speech', 'duplex_steer.hooks')\n"
        "print(json.dumps({'plain': plain, 'step': sorted(m for m in heavy if m in sys.modules),\n"
        "                  'transformers': 'transformers' in sys.modules, 'gc': gc.isenabled()}))\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"plain": [], "step": [], "transformers": False, "gc": True}
