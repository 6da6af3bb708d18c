"""Train the organism on CPU: speech bank -> mel codec -> episodes -> teacher-forced Moshi modules.

    duplex-steer train-organism --seed 0 --out runs/organism-seed0     # about 10 minutes on 2 cores

Everything is seeded: the codec is fitted with seed 0 (shared by every training seed, so seeds
differ only in the model), the episodes and the weights with `--seed`. The loss is the reference's
teacher-forced objective: cross-entropy on the model's next text token (padding weighted 0.5)
plus the mean cross-entropy over its 8 audio codebooks. Writes the checkpoint folder (see
`checkpoint.py`), `training.json` (settings, loss history, wall time) and `loss.png`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.mel_codec import MelCodec
from ..engine.text import PAD
from .episodes import EpisodeConfig, EpisodeGenerator
from .speech import SpeechBank
from .world import BACKCHANNELS, BUFFER, World

CODEC_SEED = 0


@dataclass
class TrainConfig:
    seed: int = 0
    steps: int = 700
    batch_size: int = 12
    lr: float = 3e-3
    warmup: int = 60
    weight_decay: float = 0.01
    pad_weight: float = 0.5
    threads: int = 2
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)


def codec_corpus(world: World, bank: SpeechBank) -> list[np.ndarray]:
    """The audio the codec is fitted on: every context, stray word, buffered prefix, a question per
    subject, and every model word (three times, as the organism's own voice matters most)."""
    waves = [bank.user_audio(f"Tell me about {t}.")[0] for t in world.topics]
    waves += [bank.user_audio(b.capitalize() + ".")[0] for b in BACKCHANNELS]
    for s in world.zbb_subjects + world.extra_subjects:
        waves.append(bank.user_audio(s.capitalize() + ".")[0])
        waves.append(bank.user_audio(world.fact(s, world.candidate_descriptions(s)[1][0]).question)[0])
    waves += [bank.user_audio(f"{BUFFER} {world.fact(s, world.true_description[s]).question}")[0]
              for s in world.extra_subjects[:8]]
    return waves + [bank.model_word_audio(w) for w in world.model_words] * 3


def build_codec(world: World, bank: SpeechBank) -> MelCodec:
    return MelCodec.fit(codec_corpus(world, bank), card=64, stages=8, seed=CODEC_SEED)


def loss_terms(model, codes: torch.Tensor, pad_weight: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(text loss, audio loss) of the teacher-forced pass on codes [B, 17, T]."""
    out = model.teacher_forced(codes)
    text_target = codes[:, 0]
    weight = torch.where(text_target == PAD, pad_weight, 1.0)
    text = F.cross_entropy(out.text_logits.flatten(0, 1), text_target.flatten(), reduction="none")
    text = (text * weight.flatten()).sum() / weight.sum()
    audio = []
    for k in range(model.spec.dep_q):
        d = model.spec.delays[k + 1]
        T = codes.shape[2] - d
        logits = out.audio_logits[:, k, :T]
        audio.append(F.cross_entropy(logits.flatten(0, 1), codes[:, 1 + k, :T].flatten()))
    return text, torch.stack(audio).mean()


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Train one organism into `out_dir`; returns the training record."""
    from tqdm.auto import tqdm

    from .checkpoint import new_model, save_checkpoint, trainable_parameters

    t0 = time.perf_counter()
    torch.set_num_threads(config.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = World.load()
    bank = SpeechBank()
    bank.codec = build_codec(world, bank)
    gen = EpisodeGenerator(world, bank, config.episodes, seed=config.seed)
    model = new_model(world, bank.codec, seed=config.seed)
    params = trainable_parameters(model)
    for p in params:
        p.requires_grad_(True)
    model.train()
    opt = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        frac = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    history: list[dict[str, float]] = []
    setup_s = time.perf_counter() - t0
    bar = tqdm(range(config.steps), desc=f"organism seed {config.seed}", disable=not progress)
    for step in bar:
        codes = gen.batch(config.batch_size)
        text_loss, audio_loss = loss_terms(model, codes, config.pad_weight)
        loss = text_loss + audio_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        history.append({"step": step, "text": float(text_loss), "audio": float(audio_loss)})
        bar.set_postfix(text=f"{float(text_loss):.3f}", audio=f"{float(audio_loss):.3f}")
    model.requires_grad_(False)
    model.eval()
    model.forget_fused_weights()
    record = {
        "config": asdict(config), "setup_s": round(setup_s, 1), "wall_s": round(time.perf_counter() - t0, 1),
        "torch": torch.__version__, "threads": config.threads, "history": history,
    }
    save_checkpoint(model, out, training=record)
    plot_loss(history, out / "loss.png", title=f"organism seed {config.seed}")
    return record


def plot_loss(history: list[dict[str, float]], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for key, color in (("text", "tab:blue"), ("audio", "tab:orange")):
        vals = np.array([h[key] for h in history])
        ax.plot(steps, vals, color=color, alpha=0.25)
        k = min(25, len(vals))
        smooth = np.convolve(vals, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, color=color, label=f"{key} loss (moving mean of {k})")
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(title or "organism training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
