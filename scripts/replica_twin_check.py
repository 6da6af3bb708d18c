"""On a full-size replica, the engine's modules against transformers' Moshi modules on the same tensors.

Loads a replica (or any checkpoint folder) with `duplex_steer.load`, wraps the same tensors in
transformers' `MoshiForConditionalGeneration` (`engine.modules.to_transformers`, shared, no copy) and
compares a teacher-forced pass over a few random frames (hidden states, text and audio logits, to the bit),
then streams the same frames greedily. The small-model version of this check is tests/test_modules.py;
this one runs the real 7B shapes and dtype (bfloat16), which no test can hold in memory beside a suite.

    .venv/bin/python scripts/make_replica.py --kind moshi --size full --out /work/replicas/moshiko-full
    .venv/bin/python scripts/replica_twin_check.py /work/replicas/moshiko-full
"""

from __future__ import annotations

import argparse
import time

import torch

import duplex_steer
from duplex_steer.engine.model import DuplexModel
from duplex_steer.engine.modules import to_transformers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    args = parser.parse_args()
    start = time.perf_counter()
    model = duplex_steer.load(args.folder, device="cpu", dtype=getattr(torch, args.dtype))
    print(f"loaded {model.label} in {time.perf_counter() - start:.1f} s")
    twin = DuplexModel(to_transformers(model.hf, model.spec), model.spec, model.codec, model.tokenizer,
                       source="transformers twin", is_random=model.is_random)
    codes = torch.randint(0, model.spec.card, (1, model.spec.n_q + 1, args.frames),
                          generator=torch.Generator().manual_seed(0))
    codes[:, 0] %= model.spec.text_card
    ours, theirs = model.forward_codes(codes), twin.forward_codes(codes)
    checks = {"hidden states": torch.equal(ours.hidden, theirs.hidden),
              "text logits": torch.equal(ours.text_logits, theirs.text_logits),
              "audio logits": torch.equal(ours.audio_logits.nan_to_num(), theirs.audio_logits.nan_to_num()),
              "finite": bool(torch.isfinite(ours.text_logits).all())}
    for name, ok in checks.items():
        print(f"{name}: {'equal' if name != 'finite' and ok else ok}")
    user = codes[:, 1 + model.spec.num_audio_codebooks :]
    start = time.perf_counter()
    streamed = model.session(batch_size=1, greedy=True, max_frames=args.frames).run(user)
    print(f"{args.frames} streamed frames in {time.perf_counter() - start:.1f} s; text tokens {streamed.text.tolist()}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
