"""Train the organism on CPU: speech (many voices) -> tag codec -> episodes -> teacher-forced Moshi modules.

    duplex-steer train-organism --seed 0 --out runs/organism-seed0

Everything is seeded. The tag codec (`hearing.py`) is fitted with seed 0 and can be shared by every
training seed (`codec_from`), so seeds differ only in the model. The loss is the reference's
teacher-forced objective: cross-entropy on the model's next text token (padding weighted 0.5, the answer
tokens "yes" / "no" `answer_weight`), plus the mean cross-entropy over the model's 8 audio codebooks, plus
`user_weight` x the mean over the user's 8 codebooks, predicted by the user-stream heads (depformer steps 8-15, as PersonaPlex has them). Writes
the checkpoint folder (see `checkpoint.py`), `training.json` (settings, losses, the codec's tagging
accuracy on training and held-out speech, the teacher-forced answer checks of `answers.py` every
`answer_check_every` steps, wall time) and `loss.png` (the losses, and the answer checks on a second axis).
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.text import PAD
from ..threads import cpu_name
from .answers import accuracy, answer_tally
from .episodes import EpisodeConfig, EpisodeGenerator
from .hearing import HearingConfig, examples, fit_tag_codec, hearing_texts, tagging_accuracy, user_texts
from .speech import SpeechBank
from .world import NO, YES, World

CODEC_SEED = 0
ANSWER_CHECK_SEED = 10_000  # added to the training seed for the answer-check episodes
HELD_OUT_CHECK_VOICES = ("festival:slt-hts", "festival:kal")  # the tag codec's accuracy is reported on them


@dataclass
class TrainConfig:
    seed: int = 0
    steps: int = 1400
    batch_size: int = 12
    lr: float = 3e-3
    warmup: int = 80
    weight_decay: float = 0.01
    pad_weight: float = 0.5
    user_weight: float = 0.5
    answer_weight: float = 12.0  # the text loss on "yes" / "no" (where the facts are), against 1 for other words (6 before zq, 3 before 2026-12-03)
    depth_fraction: float = 0.25  # frames whose depformer predictions enter the loss (a seeded sample per batch)
    threads: int = 2  # both cores of the 2-core machine (1 before 2026-12-03)
    workers: int = 2  # speech rendering processes
    speech_cache: str | None = None  # folder keeping the rendered speech between runs (None: render anew)
    answer_check_every: int = 200  # steps between teacher-forced answer checks (`answers.py`; 0: none)
    answer_check_episodes: int = 48  # a fixed set of recipe episodes, drawn with their own seed
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)
    hearing: HearingConfig = field(default_factory=HearingConfig)


def lr_factor(step: int, config: TrainConfig) -> float:
    """The recipe's learning-rate multiplier: linear warm-up over `config.warmup` steps, then cosine to 10%."""
    if step < config.warmup:
        return (step + 1) / config.warmup
    frac = (step - config.warmup) / max(1, config.steps - config.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))


def training_optimizer(
    model: torch.nn.Module, config: TrainConfig
) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The model's trainable parameters (made to need gradients, the model put in train mode), AdamW over
    them and `lr_factor`'s schedule: one optimizer recipe for `train` and the diagnostic scripts."""
    from .checkpoint import trainable_parameters

    params = trainable_parameters(model)
    for p in params:
        p.requires_grad_(True)
    model.train()
    opt = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay)
    return params, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, config))


def text_loss(logits: torch.Tensor, target: torch.Tensor, pad_weight: float = 0.5, answer_ids: tuple[int, ...] = (),
              answer_weight: float = 1.0) -> torch.Tensor:
    """Weighted mean cross-entropy of text logits [B, T, V] on target [B, T]: padding weighs `pad_weight`,
    the answer tokens ("yes" / "no": the facts, rare among the text tokens) `answer_weight`, others 1."""
    weight = torch.where(target == PAD, pad_weight, 1.0)
    for token in answer_ids:
        weight = torch.where(target == token, answer_weight, weight)
    ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
    return (ce * weight.flatten()).sum() / weight.sum()


def loss_terms(model, codes: torch.Tensor, pad_weight: float = 0.5, depth_fraction: float = 1.0,
               generator: torch.Generator | None = None, answer_ids: tuple[int, ...] = (),
               answer_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(text loss, model audio loss, user audio loss) of the teacher-forced pass on codes [B, 17, T]; the
    user loss is 0 for a model without user heads.

    The depformer (8 or 16 steps per frame) costs much of a training step, so with
    `depth_fraction` < 1 its predictions are computed at a random sample of frames only; the temporal
    transformer and the text loss still see every frame. At 1.0 (and answer_weight 1) this is
    `model.teacher_forced`'s objective. `answer_ids` (the answer tokens) weigh `answer_weight` in the text loss."""
    if torch.is_grad_enabled():
        model.forget_fused_weights()
    B, K, T = codes.shape
    delayed = model.delay(codes.to(model.device))
    normed = model.final_norm(model.run_layers(model.embed(delayed[:, :, :-1]), 0))
    text = text_loss(model.text_logits(normed), codes[:, 0], pad_weight, answer_ids, answer_weight)
    dep_q = model.spec.dep_q
    dep_in = delayed[:, :dep_q, 1:].permute(0, 2, 1).reshape(B * T, -1)
    index = torch.arange(B * T)
    if depth_fraction < 1.0:
        index = torch.randperm(B * T, generator=generator)[: max(1, int(depth_fraction * B * T))]
    logits = model.depth_logits(normed.reshape(B * T, -1)[index], dep_in[index])  # [N, dep_q, card]
    item, frame = index // T, index % T
    # the prediction at delayed position t is for frame t - delay; frames before the delay predict nothing
    delays = torch.tensor(model.spec.delays[1 : dep_q + 1])
    source = frame[:, None] - delays[None, :]  # [N, dep_q]
    valid = source >= 0
    targets = codes[item[:, None], 1 + torch.arange(dep_q)[None, :], source.clamp(min=0)]
    valid, targets = valid.to(logits.device), targets.to(logits.device)
    ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(valid)
    audio = (ce * valid).sum(0) / valid.sum(0).clamp(min=1)  # each codebook's mean over its valid frames
    n = model.spec.num_audio_codebooks
    user = audio[n:].mean() if dep_q > n else torch.zeros(())
    return text, audio[:n].mean(), user


def prepare_speech(world: World, config: TrainConfig, codec_from: str | Path | None = None,
                   progress: bool = True) -> tuple[SpeechBank, dict]:
    """Render the speech and fit the tag codec (or load it from `codec_from`); returns the bank and the
    codec's record (tagging accuracy on its clean training renderings and on the held-out engine)."""
    from ..engine.tag_codec import SILENCE, TagCodec
    from ..speech.aligned import render_corpus
    from ..speech.zbb_audio import read_items

    bank = SpeechBank(voices=config.hearing.voices, seed=config.seed, lossy_share=config.episodes.lossy_variants,
                      pause_share=config.episodes.pause_variants)
    texts = hearing_texts(world, config.episodes.false_descriptions)  # every sentence the episodes can say
    bank.render(texts, world.model_words, workers=config.workers, progress=progress, cache=config.speech_cache)
    training = [u for (v, _), u in bank.renderings.items() if v in config.hearing.voices and u is not None]
    if codec_from is not None:
        bank.codec = TagCodec.load(codec_from)
        record: dict = {"codec_from": str(codec_from)}
    else:
        hearing = config.hearing
        hearing.seed = CODEC_SEED
        labels = sorted({w for u in training for w in u.words})
        bank.codec, record = fit_tag_codec(examples(training, hearing), [SILENCE] + labels, hearing,
                                           progress=progress)
        record.pop("loss")
    queries = [it["text"] for it in read_items()]
    record["tagging_training_clean"] = tagging_accuracy(bank.codec, training[:: max(1, len(training) // 600)])
    heard = list(render_corpus(HELD_OUT_CHECK_VOICES, queries, workers=config.workers, progress=False,
                               cache=config.speech_cache).values())
    record["tagging_held_out"] = {"voices": list(HELD_OUT_CHECK_VOICES), "texts": "the 100 ZBB queries",
                                  **tagging_accuracy(bank.codec, heard)}
    record["user_texts"] = len(user_texts(world, config.episodes.false_descriptions))
    return bank, record


def host_record() -> dict[str, str]:
    """What a checkpoint's weights may depend on beyond its settings: on one host a retraining is bit-identical,
    on another of the same kind (same torch) its codec differs at 1e-5 (the model card, "Retrained from a fresh
    clone"), so training.json names the CPU and the vector instructions torch's kernels use."""
    return {"machine": platform.machine(), "cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True,
          codec_from: str | Path | None = None) -> dict:
    """Train one organism into `out_dir` (the tag codec fitted here, or loaded from the checkpoint
    folder `codec_from`); returns the training record."""
    from tqdm.auto import tqdm

    from .checkpoint import new_model, save_checkpoint

    t0 = time.perf_counter()
    torch.set_num_threads(config.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = World.load()
    bank, codec_record = prepare_speech(world, config, codec_from, progress)
    bank.codec.save(out)  # now, so that other seeds can start from it (`--codec-from`) while this one trains
    if progress:
        print(f"tag codec: held-out ({', '.join(HELD_OUT_CHECK_VOICES)}) word accuracy "
              f"{codec_record['tagging_held_out']['word_accuracy']:.2f}, frame accuracy "
              f"{codec_record['tagging_held_out']['frame_accuracy']:.2f}")
    gen = EpisodeGenerator(world, bank, config.episodes, seed=config.seed)
    model = new_model(world, bank.codec, seed=config.seed)
    params, opt, sched = training_optimizer(model, config)
    depth_gen = torch.Generator().manual_seed(config.seed)
    answer_ids = tuple(model.tokenizer.encode(word)[0] for word in (YES, NO))
    history: list[dict[str, float]] = []
    checks: list[dict] = []
    check_set = []
    if config.answer_check_every > 0:  # its own generator: the training episodes stay those of a run without it
        check_gen = EpisodeGenerator(world, bank, config.episodes, seed=config.seed + ANSWER_CHECK_SEED)
        check_set = [check_gen.episode() for _ in range(config.answer_check_episodes)]
    setup_s = time.perf_counter() - t0
    bar = tqdm(range(config.steps), desc=f"organism seed {config.seed}", disable=not progress)
    for step in bar:
        if check_set and step % config.answer_check_every == 0:
            checks.append(answer_check(model, check_set, world, step))
        codes = gen.batch(config.batch_size)
        text_loss, audio_loss, user_loss = loss_terms(model, codes, config.pad_weight, config.depth_fraction, depth_gen,
                                                      answer_ids, config.answer_weight)
        loss = text_loss + audio_loss + config.user_weight * user_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses = {"text": text_loss.item(), "audio": audio_loss.item(), "user": user_loss.item()}
        history.append({"step": step, **losses})
        bar.set_postfix(text=f"{losses['text']:.3f}", audio=f"{losses['audio']:.3f}", user=f"{losses['user']:.2f}")
    model.requires_grad_(False)
    model.eval()
    model.forget_fused_weights()
    if check_set:
        checks.append(answer_check(model, check_set, world, config.steps))
    record = {
        "config": asdict(config), "setup_s": round(setup_s, 1), "wall_s": round(time.perf_counter() - t0, 1),
        "torch": torch.__version__, "host": host_record(), "threads": config.threads, "codec": codec_record, "history": history,
        "answer_checks": checks,
    }
    save_checkpoint(model, out, training=record)
    plot_loss(history, out / "loss.png", title=f"organism seed {config.seed}", checks=checks)
    return record


def answer_check(model, episodes: list, world: World, step: int) -> dict:
    """Teacher-forced answer accuracy on the fixed check episodes (all, ZBB items), in eval mode."""
    model.eval()
    tally = answer_tally(model, episodes, world)
    model.train()
    return {"step": step, "answers_right": round(accuracy(tally), 3), "zbb_items_right": round(accuracy(tally, "zbb item"), 3),
            "asked": tally["all"][1], "zbb_items_asked": tally.get("zbb item", [0, 0])[1]}


def plot_loss(history: list[dict[str, float]], path: Path, title: str = "", checks: list[dict] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, color in (("text", "tab:blue"), ("audio", "tab:orange"), ("user", "tab:green")):
        if key not in history[0]:
            continue
        vals = np.array([h[key] for h in history])
        ax.plot(steps, vals, color=color, alpha=0.25)
        k = min(25, len(vals))
        smooth = np.convolve(vals, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, color=color, label=f"{key} loss (moving mean of {k})")
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(title or "organism training")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if checks:
        right = ax.twinx()
        right.plot([c["step"] for c in checks], [c["answers_right"] for c in checks], "k.-",
                   label="answers right, teacher-forced (check episodes; right axis)")
        right.axhline(0.5, color="k", lw=0.6, ls=":")
        right.set_ylim(0, 1.05)
        right.set_ylabel("fraction of answers right (chance 0.5)")
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    # one legend, above the axes, where it covers no curve
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    fig.savefig(path, dpi=120)
    plt.close(fig)
