"""The nnsight route: capture a duplex model's layer outputs with nnsight instead of our hooks.

`NNsight(module)` traces a module's `forward`:

- teacher-forced: `NNsight(model)` traces `DuplexModel.forward` (= `forward_codes`); each layer is
  called once and its `.output` is [B, T, dim];
- streaming: `Streaming(model)(user_codes)` runs a fresh greedy session frame by frame; each layer is
  called once per frame, and `for step in tracer.iter[:]` visits every call ([B, 1, dim] each).

nnsight needs its trace bodies in a file (not stdin), hence this script. Run it:

    .venv/bin/python examples/nnsight_route.py            # the tiny random model: a pipeline check
    .venv/bin/python examples/nnsight_route.py --model tiny-personaplex --layers 1 3 --out states.safetensors
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from nnsight import NNsight
from torch import Tensor, nn


class Streaming(nn.Module):
    """forward(user_codes [B, 8, T]) = the model's text tokens [B, T] from a fresh greedy session."""

    def __init__(self, model):
        super().__init__()
        self.dm = model

    def forward(self, user_codes: Tensor) -> Tensor:
        return self.dm.session(batch_size=user_codes.shape[0], greedy=True).run(user_codes).text


def teacher_forced_outputs(model, codes: Tensor, layers: Sequence[int]) -> dict[int, Tensor]:
    """Layer outputs [B, T, dim] of a teacher-forced pass, captured by nnsight."""
    traced = NNsight(model)
    saved = {}
    with traced.trace(codes):
        for layer in layers:
            saved[layer] = traced.hf.decoder.model.layers[layer].output.save()
    return {layer: t.detach().clone() for layer, t in saved.items()}


def streaming_outputs(model, user_codes: Tensor, layers: Sequence[int]) -> dict[int, Tensor]:
    """Layer outputs [B, T, dim] of a streaming greedy conversation, one nnsight call per frame."""
    traced = NNsight(Streaming(model))
    with traced.trace(user_codes) as tracer:
        frames = list().save()  # one [output of each layer] list per frame
        for _ in tracer.iter[: user_codes.shape[-1]]:
            frames.append([traced.dm.hf.decoder.model.layers[layer].output for layer in layers])
    return {layer: torch.cat([f[i] for f in frames], 1) for i, layer in enumerate(layers)}


def main(argv: Sequence[str] | None = None) -> None:
    import duplex_steer as ds
    from duplex_steer.hooks import record

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--out", default=None, help="also write the streaming outputs to this .safetensors file")
    args = parser.parse_args(argv)
    model = ds.load(args.model, device="cpu")
    print(f"model: {model.label}")

    gen = torch.Generator().manual_seed(0)
    user = torch.randint(0, model.spec.card, (2, 8, args.frames), generator=gen)
    codes = torch.randint(0, model.spec.card, (2, 17, args.frames), generator=gen)
    codes[:, 0] = torch.randint(0, model.spec.text_card, (2, args.frames), generator=gen)

    nn_tf = teacher_forced_outputs(model, codes, args.layers)
    nn_st = streaming_outputs(model, user, args.layers)
    with record(model, args.layers) as rec_tf:
        model.forward_codes(codes)
    with record(model, args.layers) as rec_st:
        model.session(batch_size=2, greedy=True).run(user)
    for layer in args.layers:
        same_tf = torch.equal(nn_tf[layer], rec_tf.stacked(layer))
        same_st = torch.equal(nn_st[layer], rec_st.stacked(layer))
        print(f"layer {layer}: teacher-forced {tuple(nn_tf[layer].shape)} identical to record(): {same_tf}; "
              f"streaming {tuple(nn_st[layer].shape)} identical: {same_st}")
    if args.out:
        from safetensors.torch import save_file

        save_file({f"layer{layer}": t.contiguous() for layer, t in nn_st.items()}, args.out,
                  metadata={"model": model.label})
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
