"""The organism's hearing: a `TagCodec` fitted on word-aligned speech of several TTS engines and voices.

Training voices: flite's kal, awb, rms and slt, and espeak-ng's en-us, en-us+m3, en-us+f2 and en-gb+m7,
each speaking whole sentences with the engine's own word timings (`duplex_steer.speech.aligned`), plus
augmented copies (speed, gain, noise, room: `duplex_steer.speech.augment`). **The festival engine is held
out**: no festival audio enters the codec's or the organism's training; the organism's held-out figures
are read on festival renderings (`zbb/renderings/festival-slt-hts`). Caveat, said wherever the figures
are: festival's voices record speakers flite also has (festival's slt-hts and kal against flite's slt
and kal; flite is festival's lightweight port), so the held-out engine is new synthesis code, not new
speakers. A speaker in no training voice is heard far worse (measured in the model card).

Labels: every 80 ms frame is the word whose span covers most of it (at least 20 ms), else silence. The
tagger learns them with cross-entropy (silence frames weighted `silence_weight`); the class means and
residual codebooks are then fitted on the tagger's own predictions, as encoding will produce them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import FRAME_SAMPLES, SAMPLE_RATE
from ..engine.mel_codec import MelSettings, kmeans
from ..engine.tag_codec import SILENCE, FrameTagger, TagCodec, TaggerShape
from ..speech.aligned import AlignedUtterance, normalize_words
from ..speech.augment import augment_utterance, draw_augmentation, maybe_close_pauses
from .world import BACKCHANNELS, BUFFER, FALSE_DESCRIPTIONS, World

TRAINING_VOICES = ("flite:kal", "flite:awb", "flite:rms", "flite:slt",
                   "espeak-ng:en-us", "espeak-ng:en-us+m3", "espeak-ng:en-us+f2", "espeak-ng:en-gb+m7")
HELD_OUT_ENGINE = "festival"
MODEL_VOICE = "flite:rms"  # the organism's own voice (word by word, each word on a frame boundary)
MIN_WORD_OVERLAP = 480  # samples (20 ms) of a frame a word must cover to label it


@dataclass
class HearingConfig:
    """How the tag codec is fitted (seeded; defaults are the committed organism's)."""

    voices: tuple[str, ...] = TRAINING_VOICES
    augmentations: int = 3  # augmented copies of every rendering besides the clean one (2 before zq, 1 before 2026-12-03)
    max_renderings: int = 7200  # renderings the tagger trains on (a seeded sample; all voices; 4000 before zq)
    epochs: int = 6  # 3 before zq
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    silence_weight: float = 0.3
    residual_card: int = 64
    residual_stages: int = 7
    seed: int = 0
    # SpecAugment-style masks on the tagger's training batches (0: none, the committed codec): per example,
    # `band_masks` runs of 1..`band_mask_width` adjacent mel bands and `time_masks` runs of
    # 1..`time_mask_columns` 10 ms columns set to the example's mean level, so that no one band or instant
    # carries a word alone (a voice of another engine moves formants and timing)
    band_masks: int = 0
    band_mask_width: int = 5
    time_masks: int = 0
    time_mask_columns: int = 6
    # the share of augmented copies whose pauses between words are cut to 5-40 ms before augmenting
    # (`speech.augment.close_pauses`; 0 before zq): festival runs "excuse me, Penguins"
    # together, and a tagger that only heard a pause before the subject mistakes the subject's first frames
    pause_share: float = 1.0
    # the lowest 32 of 48 mel bands (up to 3.4 kHz): above, voices differ by their engine's sample rate rather
    # than by what they say (the model card's "Hearing the held-out engine"; all 48 before 2026-12-03)
    shape: TaggerShape = field(default_factory=lambda: TaggerShape(cepstra=16, band_mels=32))


def user_texts(world: World, false_descriptions: int = FALSE_DESCRIPTIONS) -> list[str]:
    """Everything the organism's user says in training: topic requests, strays and backchannels, and every
    question (silent, and as interruption with and without the buffer) about every subject, from the fact
    table of `false_descriptions` (`EpisodeConfig.false_descriptions`)."""
    texts = [f"Tell me about {t}." for t in world.topics] + [b.capitalize() + "." for b in BACKCHANNELS]
    for subject in world.zbb_subjects + world.extra_subjects:
        texts.append(subject.capitalize() + ".")
        for interruption in (False, True):
            true, false = world.candidate_descriptions(subject, others=false_descriptions, interruption=interruption)
            for description in true + false:
                question = world.fact(subject, description).question
                texts += [question, f"{BUFFER} {question}"] if interruption else [question]
    return list(dict.fromkeys(texts))


def hearing_texts(world: World, false_descriptions: int = FALSE_DESCRIPTIONS) -> list[str]:
    """The codec's training sentences: the user's texts (`user_texts`) plus the organism's own sentences and
    answers in every training voice (so the words it says have classes heard in many voices)."""
    own = [" ".join(s).capitalize() + "." for t in world.topics for s in world.monologue_sentences(t)]
    own += [f"{a.capitalize()}, {s}." for s in world.zbb_subjects + world.extra_subjects for a in ("yes", "no")]
    return list(dict.fromkeys(user_texts(world, false_descriptions) + own))


def class_labels(texts: list[str]) -> list[str]:
    """Silence, then every word of `texts` in sorted order."""
    return [SILENCE] + sorted({w for t in texts for w in normalize_words(t)})


def frame_labels(utt: AlignedUtterance, index: dict[str, int], frames: int) -> torch.Tensor:
    """[frames] class per 80 ms frame: the word covering most of it (>= 20 ms), else silence (0)."""
    cover = np.zeros((frames, len(utt.words)), np.int64)
    edges = np.arange(frames + 1) * FRAME_SAMPLES
    for j, (start, end) in enumerate(utt.spans_s):
        s, e = start * SAMPLE_RATE, end * SAMPLE_RATE
        cover[:, j] = np.clip(np.minimum(edges[1:], e) - np.maximum(edges[:-1], s), 0, None)
    best = cover.argmax(1)
    labels = np.array([index.get(w, 0) for w in utt.words])[best]
    return torch.from_numpy(np.where(cover.max(1) >= MIN_WORD_OVERLAP, labels, 0))


def examples(utterances: list[AlignedUtterance], config: HearingConfig) -> list[AlignedUtterance]:
    """At most `config.max_renderings` renderings (a seeded sample), each clean plus `config.augmentations` augmented copies
    (`config.pause_share` of them with their pauses closed first), each copy starting 0-80 ms late (so words do
    not always start at the same place in a frame); seeded by `config.seed`."""
    rng = np.random.default_rng([config.seed, 12])
    pause_rng = np.random.default_rng([config.seed, 13])  # its own stream: pause_share 0 draws as before
    if len(utterances) > config.max_renderings:
        utterances = [utterances[i] for i in sorted(rng.choice(len(utterances), config.max_renderings, replace=False))]
    out = []
    for utt in utterances:
        for k in range(1 + config.augmentations):
            if k:
                copy = augment_utterance(maybe_close_pauses(utt, config.pause_share, pause_rng), draw_augmentation(rng))
            else:
                copy = utt
            shift = int(rng.integers(0, FRAME_SAMPLES))
            out.append(AlignedUtterance(copy.text, copy.voice, np.concatenate([np.zeros(shift, np.float32), copy.audio]),
                                        copy.words, [(s + shift / SAMPLE_RATE, e + shift / SAMPLE_RATE)
                                                     for s, e in copy.spans_s]))
    return out


def fit_tag_codec(utterances: list[AlignedUtterance], labels: list[str], config: HearingConfig | None = None,
                  progress: bool = True) -> tuple[TagCodec, dict]:
    """Train the tagger on `utterances` (already augmented), then fit class means and residual codebooks."""
    from tqdm.auto import tqdm

    config = config or HearingConfig()
    t0 = time.perf_counter()
    settings = MelSettings()
    torch.manual_seed(config.seed)
    dim = settings.n_mels * settings.columns_per_frame
    tagger = FrameTagger(settings.n_mels, len(labels), settings.columns_per_frame, config.shape)
    codec = TagCodec(tagger, labels, torch.zeros(len(labels), dim), torch.zeros(config.residual_stages, 1, dim),
                     settings)
    index = {w: i for i, w in enumerate(labels)}
    data = []
    for utt in tqdm(utterances, desc="tag codec: features", disable=not progress):
        cols, lead = codec.logmel_columns(np.pad(utt.audio, (0, FRAME_SAMPLES))[None])
        frames = cols.shape[2] // settings.columns_per_frame - lead
        data.append((cols[0].half(), frame_labels(utt, index, frames)))
    stats = torch.cat([tagger.inputs(c[None].float())[0] for c, _ in data[:: max(1, len(data) // 2000)]], 1)
    tagger.input_mean.copy_(stats.mean(1, keepdim=True))
    tagger.input_std.copy_(stats.std(1, keepdim=True).clamp(min=1e-3))
    tagger.train().requires_grad_(True)
    opt = torch.optim.AdamW(tagger.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    order = sorted(range(len(data)), key=lambda i: data[i][1].numel())  # batches of similar lengths
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    total = config.epochs * len(batches)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=total, pct_start=0.1)
    weight = torch.ones(len(labels))
    weight[0] = config.silence_weight
    mask_gen = torch.Generator().manual_seed(config.seed + 7919)  # its own stream: no masks, same codec as before
    history = []
    bar = tqdm(total=total, desc="tag codec: tagger", disable=not progress)
    for epoch in range(config.epochs):
        for b in torch.randperm(len(batches), generator=gen).tolist():
            cols, target = _batch([data[i] for i in batches[b]], codec, settings.columns_per_frame)
            if config.band_masks or config.time_masks:
                mask_spectrum(cols, target, tagger, config, mask_gen)
            logits = tagger(cols)[:, tagger.shape.receptive_frames - 1 :]  # the silent lead frames dropped
            loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), weight=weight, ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append(loss.item())
            bar.update()
            bar.set_postfix(epoch=epoch, loss=f"{history[-1]:.3f}")
    bar.close()
    tagger.eval().requires_grad_(False)
    codec = _fit_books(tagger, labels, data, settings, config)
    record = {"config": asdict(config), "examples": len(data), "labels": len(labels), "loss": history,
              "wall_s": round(time.perf_counter() - t0, 1)}
    return codec, record


def mask_spectrum(cols: torch.Tensor, target: torch.Tensor, tagger: FrameTagger, config: HearingConfig,
                  gen: torch.Generator) -> None:
    """Mask runs of mel bands (of those the tagger reads) and of columns in place (`HearingConfig.band_masks`)."""
    cpf = tagger.columns_per_frame
    lead = tagger.shape.receptive_frames - 1
    for i in range(cols.shape[0]):
        length = (lead + int((target[i] != -100).sum())) * cpf
        fill = float(cols[i, : tagger.bands, lead * cpf : length].mean())
        for _ in range(config.band_masks):
            width = int(torch.randint(1, config.band_mask_width + 1, (1,), generator=gen))
            low = int(torch.randint(0, tagger.bands - width + 1, (1,), generator=gen))
            cols[i, low : low + width, lead * cpf : length] = fill
        for _ in range(config.time_masks):
            width = int(torch.randint(1, config.time_mask_columns + 1, (1,), generator=gen))
            start = int(torch.randint(lead * cpf, max(lead * cpf + 1, length - width + 1), (1,), generator=gen))
            cols[i, : tagger.bands, start : start + width] = fill


def _batch(items: list[tuple[torch.Tensor, torch.Tensor]], codec: TagCodec, cpf: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad columns with silence and labels with -100 to the longest item."""
    lead = codec.tagger.shape.receptive_frames - 1
    frames = max(lab.numel() for _, lab in items)
    cols = torch.full((len(items), items[0][0].shape[0], (lead + frames) * cpf), float(np.log(codec.settings.floor)))
    target = torch.full((len(items), frames), -100, dtype=torch.long)
    for i, (c, lab) in enumerate(items):
        cols[i, :, : c.shape[1]] = c.float()
        target[i, : lab.numel()] = lab
    return cols, target


@torch.no_grad()
def _fit_books(tagger: FrameTagger, labels: list[str], data: list, settings: MelSettings,
               config: HearingConfig) -> TagCodec:
    """Class means on the tagger's predictions, then residual k-means stages on what they leave."""
    cpf, lead = settings.columns_per_frame, tagger.shape.receptive_frames - 1
    feats, tags, truth = [], [], []
    for cols, lab in data[:: 1 + config.augmentations]:  # the clean renderings
        logits = tagger(cols[None].float())[0, lead:]
        frame_cols = cols.float()[:, lead * cpf :]
        feats.append(frame_cols.T.reshape(-1, cpf * settings.n_mels)[: lab.numel()])
        tags.append(logits.argmax(-1)[: lab.numel()])
        truth.append(lab)
    feats, tags, truth = torch.cat(feats), torch.cat(tags), torch.cat(truth)
    dim = feats.shape[1]
    means = torch.zeros(len(labels), dim)
    for c in range(len(labels)):
        chosen = feats[tags == c] if (tags == c).any() else feats[truth == c]
        means[c] = chosen.mean(0) if len(chosen) else feats[truth == 0].mean(0)
    residual = feats - means[tags]
    gen = torch.Generator().manual_seed(config.seed)
    if len(residual) > 60_000:
        residual = residual[torch.randperm(len(residual), generator=gen)[:60_000]]
    books = []
    for _ in range(config.residual_stages):
        book = kmeans(residual, config.residual_card, 20, gen)
        books.append(book)
        residual = residual - book[torch.cdist(residual, book).argmin(1)]
    return TagCodec(tagger, labels, means, torch.stack(books), settings)


def tagging_accuracy(codec: TagCodec, utterances: list[AlignedUtterance]) -> dict[str, float]:
    """How often the codec's codebook 0 names the word: over speech frames (the frame's label), and over
    words (the tag most frames of the word carry)."""
    index = {w: i for i, w in enumerate(codec.labels)}
    hit = frames = words_hit = words = 0
    for utt in utterances:
        tags = codec.tag_logits(np.pad(utt.audio, (0, FRAME_SAMPLES))[None])[0].argmax(-1)
        lab = frame_labels(utt, index, len(tags))
        speech = lab > 0
        hit += int((tags[speech] == lab[speech]).sum())
        frames += int(speech.sum())
        for c in lab[speech].unique():
            mine = tags[lab == c]
            words += 1
            words_hit += int(torch.mode(mine).values == c)
    return {"frame_accuracy": hit / max(1, frames), "word_accuracy": words_hit / max(1, words),
            "speech_frames": frames, "words": words}
