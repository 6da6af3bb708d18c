"""The organism: its world, the conversation generator, the committed checkpoint, training."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from duplex_steer.audio import FRAME_SAMPLES
from duplex_steer.engine.text import PAD
from duplex_steer.organism.world import BUFFER, EXTRA_FACTS, MONOLOGUE_TEMPLATES, World
from zbb import load_items
from zbb.scoring import stance

needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not on PATH")


@pytest.fixture(scope="module")
def world() -> World:
    return World.load()


def test_world_covers_zbb_and_keeps_extra_subjects_apart(world: World) -> None:
    items = load_items()
    for it in items:
        fact = world.fact(it["subject"], it["description"])
        assert fact.truth == it["truth"] and fact.in_zbb
        assert fact.question == it["text"]
    aliases = {a for it in items for a in it["aliases"]}
    assert not set(EXTRA_FACTS) & aliases
    tok = world.tokenizer()
    for word in ["yes", "no", *world.zbb_subjects, *world.extra_subjects]:
        assert tok.encode(word) and tok.id_to_piece(tok.encode(word)[0]) == "\u2581" + word


def test_development_items_are_a_valid_bank_of_training_only_facts(world: World, tmp_path) -> None:
    from duplex_steer.cli import main as duplex_main

    path = tmp_path / "dev.jsonl"
    assert duplex_main(["organism-dev-items", "--out", str(path)]) == 0
    items = load_items(path, expected_subjects=None)  # ZBB's own validation: fields, ids, one true + one false
    assert items == world.development_items() and len(items) == 2 * len(EXTRA_FACTS)
    zbb = load_items()
    zbb_words = {a for it in zbb for a in it["aliases"]}
    assert not {it["subject"] for it in items} & zbb_words  # no ZBB subject, hence no ZBB fact either
    assert {it["topic"] for it in items} <= {it["topic"] for it in zbb}  # topics it talks about, with ZBB's audio
    for it in items:
        assert world.fact(it["subject"], it["description"]).truth == it["truth"]  # the world's own facts
        assert it["description"] in world.descriptions  # words it heard in training
    assert len({it["topic"] for it in items}) > 5  # spread over topics, not one


def test_monologues_hold_no_yes_no_cue(world: World) -> None:
    for template in MONOLOGUE_TEMPLATES:
        assert stance(template.format(t="music")) is None, template


@pytest.fixture(scope="module")
def generator(world: World):
    if shutil.which("flite") is None:
        pytest.skip("flite not on PATH")
    from duplex_steer.engine.tag_codec import SILENCE, FrameTagger, TagCodec
    from duplex_steer.organism.episodes import EpisodeConfig, EpisodeGenerator
    from duplex_steer.organism.speech import SpeechBank

    torch.manual_seed(0)
    labels = [SILENCE] + [f"w{i}" for i in range(15)]
    tagger = FrameTagger(48, len(labels), 8)
    for p in tagger.parameters():  # random, but its tags vary with the audio
        p.data.normal_(0, 0.2)
    codec = TagCodec(tagger, labels, torch.randn(len(labels), 384), torch.randn(7, 16, 384))
    bank = SpeechBank(codec, voices=("flite:kal", "flite:slt"), model_voice="flite:kal")
    config = EpisodeConfig(zero_buffer_rate=0.2, buffered_rate=0.3, variants=4)
    return EpisodeGenerator(world, bank, config, seed=0)


@needs_flite
def test_episodes_follow_the_rules(generator, world: World) -> None:
    tok = world.tokenizer()
    episodes = [generator.episode() for _ in range(40)]
    kinds = {e.kind for e in episodes}
    assert {"silent", "buffered", "zero_buffer"} <= kinds
    for ep in episodes:
        assert ep.codes.shape == (17, generator.config.frames)
        for ev in ep.events:
            if ev["what"] in ("buffered", "zero_buffer"):  # interruptions: training-only subjects only
                assert not ev["in_zbb"]
            if ev["what"] in ("silent", "buffered", "zero_buffer", "followup"):
                words = [tok.id_to_piece(int(t))[1:] for t in ep.codes[0, ev["end"] :] if int(t) != PAD]
                assert words[:2] == ["yes" if ev["truth"] else "no", ev["subject"]]
            if ev["what"] in ("buffered", "zero_buffer"):  # the model is quiet from its stop frame on
                stop = ev["model_stopped"]
                assert (ep.codes[0, stop : ev["end"]] == PAD).all()


@needs_flite
def test_episode_codes_equal_encoding_the_rendered_user_audio(generator) -> None:
    """Per-utterance code assembly gives what the codec gives on the whole user waveform (on an episode with
    stray words besides the context and the question, drawn so the test does not depend on test order)."""
    ep = next(e for e in (generator.episode("buffered") for _ in range(20)) if len(e.events) >= 3)
    bank = generator.bank
    wav = np.zeros(generator.config.frames * FRAME_SAMPLES, np.float32)
    for ev in ep.events:
        audio = bank.user_variant(ev["text"], ev["variant"]).audio
        at = ev["start"] * FRAME_SAMPLES
        wav[at : at + len(audio)] = audio[: len(wav) - at]
    assert len(ep.events) >= 3
    assert torch.equal(bank.codec.encode(wav[None])[0], ep.codes[9:])


def test_zero_buffer_rate_zero_means_none(generator) -> None:
    from dataclasses import replace

    from duplex_steer.organism.episodes import EpisodeGenerator

    gen = EpisodeGenerator(generator.world, generator.bank, replace(generator.config, zero_buffer_rate=0.0), seed=1)
    assert all(gen.episode().kind != "zero_buffer" for _ in range(60))


def test_interruptions_have_their_own_zbb_share(world) -> None:
    """`interruption_zbb_subject_rate` sets the ZBB share of interruptions alone; unset, interruptions follow
    `zbb_subject_rate`, and either way one draw picks the pool, so the other draws are unchanged."""
    from duplex_steer.organism.episodes import EpisodeConfig, draw_fact

    def facts(config: EpisodeConfig, interruption: bool) -> list:
        rng, candidates = np.random.default_rng(3), {}
        return [draw_fact(world, rng, config, candidates, interruption) for _ in range(200)]

    split = EpisodeConfig(zbb_subject_rate=1.0, interruption_zbb_subject_rate=0.0)
    assert all(f.subject in world.zbb_subjects for f in facts(split, interruption=False))
    assert all(f.subject in world.extra_subjects for f in facts(split, interruption=True))
    plain, same = EpisodeConfig(zbb_subject_rate=0.7), EpisodeConfig(zbb_subject_rate=0.7, interruption_zbb_subject_rate=0.7)
    assert facts(plain, True) == facts(same, True) and facts(plain, False) == facts(same, False)
    assert 0.6 < np.mean([f.subject in world.zbb_subjects for f in facts(plain, True)]) < 0.8


def test_tag_noise_changes_only_user_tags_inside_utterances(generator) -> None:
    """`tag_noise` replaces about that share of the user's codebook-0 tags inside an utterance's speech with
    random classes, from its own generator: every other stream, every other frame and every draw of the
    episode (kinds, texts, timings) are those of the same seed without it."""
    from dataclasses import replace

    from duplex_steer.organism.episodes import EpisodeGenerator

    clean = EpisodeGenerator(generator.world, generator.bank, generator.config, seed=5)
    noisy = EpisodeGenerator(generator.world, generator.bank, replace(generator.config, tag_noise=0.3), seed=5)
    changed = speech = 0
    for _ in range(12):
        a, b = clean.episode(), noisy.episode()
        assert a.events == b.events and a.kind == b.kind
        differs = a.codes != b.codes
        assert not differs[:-8].any() and not differs[-7:].any()  # text, the model's streams, user codebooks 1-7
        inside = torch.zeros(a.codes.shape[1], dtype=torch.bool)
        for ev in a.events:
            utt = generator.bank.user(ev["text"], variant=ev["variant"])
            inside[ev["start"] : ev["start"] + utt.speech_frames] = True
        assert not differs[-8][~inside].any()
        changed += int(differs[-8][inside].sum())
        speech += int(inside.sum())
    assert 0.2 < changed / speech < 0.32  # 0.3, less the draws that land on the same class


def test_tag_noise_while_talking_changes_only_user_tags_the_model_talks_over(generator) -> None:
    """`tag_noise_while_talking` replaces about that share of the user's codebook-0 tags, only in speech frames
    where the model's own stream holds a word: the same episodes otherwise, clean tags where the model is
    silent (so a question asked in silence is heard as before)."""
    from dataclasses import replace

    from duplex_steer.engine.text import PAD
    from duplex_steer.organism.episodes import EpisodeGenerator

    config = replace(generator.config, zero_buffer_rate=0.5)  # questions over the model's words, beside strays
    clean = EpisodeGenerator(generator.world, generator.bank, config, seed=7)
    noisy = EpisodeGenerator(generator.world, generator.bank, replace(config, tag_noise_while_talking=0.5), seed=7)
    changed = overlapped = 0
    for _ in range(12):
        a, b = clean.episode(), noisy.episode()
        assert a.events == b.events and a.kind == b.kind
        differs = a.codes != b.codes
        assert not differs[:-8].any() and not differs[-7:].any()  # text, the model's streams, user codebooks 1-7
        stop = next((ev["model_stopped"] for ev in a.events if ev.get("model_stopped") is not None), None)
        talking = torch.zeros(a.codes.shape[1], dtype=torch.bool)  # each word's frames from its text token on
        for t in (a.codes[0] != PAD).nonzero().flatten().tolist():
            end = t + generator.bank.model_word(noisy.tok.pieces[int(a.codes[0, t])][1:]).frames
            talking[t : min(end, stop) if stop is not None and t < stop else end] = True
        inside = torch.zeros(a.codes.shape[1], dtype=torch.bool)
        for ev in a.events:
            utt = generator.bank.user(ev["text"], variant=ev["variant"])
            inside[ev["start"] : ev["start"] + utt.speech_frames] = True
        assert not differs[-8][~(inside & talking)].any()
        changed += int(differs[-8][inside & talking].sum())
        overlapped += int((inside & talking).sum())
    assert overlapped > 40  # strays and zero-buffer questions overlap the model's words
    assert 0.35 < changed / overlapped < 0.55  # 0.5, less the draws that land on the same class


def test_monologue_frames_set_how_long_the_model_talks_before_a_question(generator) -> None:
    """`monologue_frames` (train-organism's --monologue-frames) draws the monologue's length: whole sentences
    until it is spent, so a monologue lasts at least MIN frames and overshoots MAX by less than its last
    sentence; with only `none` episodes the model's words are that monologue alone."""
    from dataclasses import replace

    from duplex_steer.engine.text import PAD
    from duplex_steer.organism.episodes import EpisodeGenerator

    world = generator.world
    longest = max(sum(generator.bank.model_word(w).frames for w in sentence)
                  for topic in world.topics for sentence in world.monologue_sentences(topic))
    only_monologues = replace(generator.config, zero_buffer_rate=0.0, buffered_rate=0.0, retopic_rate=0.0,
                              none_rate=1.0)
    spans = {}
    for bounds in ((20, 24), (60, 64)):
        gen = EpisodeGenerator(world, generator.bank, replace(only_monologues, monologue_frames=bounds), seed=3)
        spans[bounds] = []
        for _ in range(8):
            episode = gen.episode()
            assert episode.kind == "none"
            said = (episode.codes[0] != PAD).nonzero().flatten().tolist()
            last_word = gen.tok.pieces[int(episode.codes[0, said[-1]])][1:]
            span = said[-1] + generator.bank.model_word(last_word).frames - said[0]
            assert bounds[0] <= span < bounds[1] + longest
            spans[bounds].append(span)
    assert max(spans[(20, 24)]) < min(spans[(60, 64)])


def test_false_descriptions_set_the_fact_table(generator) -> None:
    """`EpisodeConfig.false_descriptions` bounds the false facts asked about each subject: with 1, a subject's
    false questions use its ZBB false description or one other; the true ones are its two truths."""
    from dataclasses import replace

    from duplex_steer.organism.episodes import EpisodeGenerator

    world = generator.world
    gen = EpisodeGenerator(world, generator.bank, replace(generator.config, false_descriptions=1), seed=2)
    from duplex_steer.organism.hearing import user_texts

    rendered = set(user_texts(world, 1))  # what training renders ahead for this table
    seen: dict[tuple[str, bool], set[str]] = {}
    for _ in range(40):
        for ev in gen.episode().events:
            assert ev["text"] in rendered, ev["text"]
            if ev["what"] in ("silent", "followup", "buffered", "zero_buffer"):
                question = ev["text"].removeprefix(f"{BUFFER} ")
                description = question.split(", ", 1)[1].removesuffix(", right?")
                seen.setdefault((ev["subject"], ev["truth"]), set()).add(description)
    assert sum(len(v) for v in seen.values()) >= 40
    for (subject, truth), descriptions in seen.items():
        true, false = world.candidate_descriptions(subject, others=1)
        assert descriptions <= set(true if truth else false), (subject, truth, descriptions)
        if not truth:
            zbb_false = [d for d in false if (subject, d) in world.zbb_pairs]
            assert len(false) == len(zbb_false) + 1


@pytest.fixture(scope="module")
def organism():
    from duplex_steer import load

    return load("organism")


def test_committed_checkpoint_was_trained_with_the_recipes_defaults() -> None:
    """`train-organism --seed 0` is the committed checkpoint's command: its recorded settings (training.json)
    are TrainConfig's defaults, hearing and episodes included, and its codec has HearingConfig's shape; only
    the rendering processes and the speech cache, which change no value, may differ."""
    import json
    from dataclasses import asdict

    from duplex_steer.organism.checkpoint import WEIGHTS_DIR
    from duplex_steer.organism.train import TrainConfig

    recorded = json.loads((WEIGHTS_DIR / "training.json").read_text())["config"]
    defaults = json.loads(json.dumps(asdict(TrainConfig())))  # tuples as JSON lists, as recorded
    for free in ("workers", "speech_cache"):
        recorded.pop(free), defaults.pop(free)
    assert recorded == defaults
    codec_shape = json.loads((WEIGHTS_DIR / "codec.json").read_text())["tagger"]
    assert codec_shape == defaults["hearing"]["shape"]


def test_committed_organism_loads_offline_and_says_what_it_is(organism) -> None:
    assert organism.source == "organism" and not organism.is_random
    assert "toy world" in organism.label
    assert organism.codec.num_codebooks == 8 and organism.codec.frame_samples == FRAME_SAMPLES
    assert organism.spec.has_user_heads and organism.spec.dep_q == 16
    from duplex_steer.engine.tag_codec import TagCodec

    assert isinstance(organism.codec, TagCodec) and organism.codec.card <= organism.spec.card
    assert sum(p.numel() for p in organism.hf.decoder.parameters()) > 1e6


@pytest.mark.parametrize("rendering", ["flite-slt", "festival-slt-hts"])
def test_organism_talks_after_tell_me_about(organism, rendering: str) -> None:
    """Greedy, the trained organism answers a ZBB context prompt with words of its topic, spoken by a training
    voice (flite slt) and by the held-out engine (festival)."""
    from duplex_steer.engine.conversation import converse
    from zbb.build import load_context_audio
    from zbb.rendering import RENDERINGS_DIR

    audio_dir = RENDERINGS_DIR / rendering
    wav = np.concatenate([load_context_audio(audio_dir, "Tell me about music."), np.zeros(24_000 * 4, np.float32)])
    result = converse(organism, [wav], greedy=True, seed=0, decode_audio=False)
    assert "music" in result.texts[0].split()


def test_training_lowers_the_loss(world: World) -> None:
    """A few steps on a fixed batch of the real objective lower it (the training loop's machinery)."""
    if shutil.which("flite") is None:
        pytest.skip("flite not on PATH")
    from duplex_steer.organism.checkpoint import new_model, trainable_parameters
    from duplex_steer.organism.train import loss_terms

    organism_codec = __import__("duplex_steer").load("organism").codec
    from duplex_steer.organism.episodes import EpisodeConfig, EpisodeGenerator
    from duplex_steer.organism.speech import SpeechBank

    bank = SpeechBank(codec=organism_codec, voices=("flite:kal",))
    gen = EpisodeGenerator(world, bank, EpisodeConfig(frames=96, monologue_frames=(20, 30)), seed=0)
    codes = gen.batch(2)
    torch.manual_seed(0)
    model = new_model(world, organism_codec, seed=0)
    params = trainable_parameters(model)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    assert model.spec.has_user_heads
    for _ in range(6):
        text, audio, user = loss_terms(model, codes)
        opt.zero_grad()
        (text + audio + user).backward()
        opt.step()
        losses.append(float((text + audio + user).detach()))
    assert losses[-1] < 0.7 * losses[0]
    with torch.no_grad():  # the no-grad path agrees with the training path after updates
        model._depth_weights = None
        a = model.forward_codes(codes).text_logits
        b = model.teacher_forced(codes).text_logits
    assert torch.allclose(a, b)


def test_loss_terms_are_the_teacher_forced_cross_entropies(organism) -> None:
    """The training loss equals cross-entropy read off `teacher_forced`'s outputs: text (padding and answer
    tokens weighted), the model's and the user's codebooks each averaged over its predicted frames, and, with
    `depth_fraction` < 1, over the sampled frames only."""
    import torch.nn.functional as F

    from duplex_steer.organism.train import loss_terms

    g = torch.Generator().manual_seed(3)
    B, T, spec = 2, 40, organism.spec
    codes = torch.stack([torch.randint(0, spec.text_card, (B, T), generator=g)]
                        + [torch.randint(0, organism.codec.card, (B, T), generator=g) for _ in range(spec.n_q)], 1)
    codes[0, 0, :10] = PAD
    answer = (int(codes[1, 0, 5]),)
    with torch.no_grad():
        out = organism.teacher_forced(codes)
        weight = torch.where(codes[:, 0] == PAD, 0.5, 1.0)
        weight = torch.where(codes[:, 0] == answer[0], 3.0, weight)
        text_ce = F.cross_entropy(out.text_logits.flatten(0, 1), codes[:, 0].flatten(), reduction="none")
        expected_text = (text_ce * weight.flatten()).sum() / weight.sum()
        for fraction in (1.0, 0.3):
            picked = torch.ones(B * T, dtype=torch.bool)
            if fraction < 1.0:
                index = torch.randperm(B * T, generator=torch.Generator().manual_seed(9))[: int(fraction * B * T)]
                picked = torch.zeros(B * T, dtype=torch.bool)
                picked[index] = True
            per_codebook = []
            for k in range(spec.dep_q):  # teacher_forced undelays: frame t's prediction sits at t, NaN if none
                logits = out.audio_logits[:, k].reshape(B * T, -1)
                d = spec.delays[k + 1]
                # loss_terms samples delayed positions; position p predicts frame p - d
                chosen = [p for p in range(B * T) if picked[p] and p % T >= d]
                frames = torch.tensor([p - d for p in chosen])
                per_codebook.append(F.cross_entropy(logits[frames], codes[:, 1 + k].flatten()[frames]))
            text, audio, user = loss_terms(organism, codes, 0.5, fraction, torch.Generator().manual_seed(9), answer,
                                           3.0)
            n = spec.num_audio_codebooks
            torch.testing.assert_close(text, expected_text)
            torch.testing.assert_close(audio, torch.stack(per_codebook[:n]).mean(), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(user, torch.stack(per_codebook[n:]).mean(), rtol=1e-5, atol=1e-5)


def test_main_job_runs_on_the_organism_by_default(tmp_path) -> None:
    """`zbb main` (the README's main job) defaults to the organism: every condition, its caveat, its vector."""
    import json

    from zbb.cli import ALL_CONDITIONS, main

    assert main(["main", "--limit", "2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["conditions"]) == set(ALL_CONDITIONS)
    assert "toy world" in (tmp_path / "report.md").read_text()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["config"]["model"] == "organism" and saved["config"]["alpha"] is None  # the model's default
    assert {k: saved["steering"][k] for k in ("layer", "alpha", "span")} == {"layer": 5, "alpha": 1.0, "span": 3}
    from duplex_steer.steering import PerceptionVector

    assert PerceptionVector.load(tmp_path / "perception_vector.safetensors").layers == [5]


def test_steering_catches_interruptions_in_the_held_out_engines_voice(tmp_path) -> None:
    """On the held-out engine's recordings (festival, never heard in training), steering at the onset makes the
    organism name the interrupting question's subject on more of the first 40 ZBB items than it loses, paired
    item by item (the main job's own vector and settings; sampled, seed 0)."""
    import json

    from duplex_steer.cli import main as duplex_steer
    from duplex_steer.organism.fixtures import held_out_rendering
    from zbb.cli import main as zbb

    vector = tmp_path / "vector.safetensors"
    assert duplex_steer(["fit-vector", "--model", "organism", "--out", str(vector)]) == 0
    assert zbb(["run", "--model", "organism", "--vector", str(vector), "--limit", "40", "--audio",
                str(held_out_rendering()), "--out", str(tmp_path / "run"), "--conditions", "interrupt",
                "interrupt+steer"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    pairs = report["paired"]["interrupt+steer"]["metrics"]["iwor"]["mcnemar"]
    assert pairs["n_pairs"] >= 35 and pairs["gained"] >= pairs["lost"] + 4, pairs


def test_user_heads_predict_the_users_next_codes(organism) -> None:
    """The user-stream heads (depformer steps 8-15) predict the user's codebook 0 on a held-out-engine
    recording: better than always guessing its most frequent code (silence) over all frames, and on the
    frames where the user speaks (where that guess scores 0, a uniform one 1/298) they name the next code
    at least 15% of the time (the committed organism: 0.24 of 38 frames; the one before it 0.30 of 40)."""
    from duplex_steer.audio import load_audio
    from duplex_steer.organism.fixtures import ORGANISM_EXAMPLE

    wav = load_audio(ORGANISM_EXAMPLE)
    user = organism.codec.encode(wav[None])  # [1, 8, T]
    T = user.shape[2]
    codes = torch.cat([torch.full((1, 1, T), PAD), organism.codec.encode(np.zeros((1, T * FRAME_SAMPLES), np.float32)),
                       user], 1)
    with torch.no_grad():
        logits = organism.forward_codes(codes).audio_logits[0, organism.spec.num_audio_codebooks]  # user cb 0
    target = user[0, 0]
    hit = (logits.argmax(-1) == target).float().mean().item()
    baseline = (target == torch.mode(target).values).float().mean().item()
    assert hit > baseline, (hit, baseline)
    speech = target != torch.mode(target).values
    assert speech.sum() >= 20 and (logits.argmax(-1)[speech] == target[speech]).float().mean().item() >= 0.15


def test_loading_on_the_meta_device_equals_loading_into_a_built_model(organism) -> None:
    """The quick load path (modules built on the meta device, the saved tensors put in) gives the model that
    loading the same tensors into fully built modules gives."""
    import json

    from safetensors.torch import load_file

    from duplex_steer.engine.spec import ModelSpec
    from duplex_steer.organism.checkpoint import WEIGHTS_DIR, assemble

    spec = ModelSpec.from_kyutai(json.loads((WEIGHTS_DIR / "config.json").read_text())["spec"])
    built = assemble(spec, organism.codec, organism.tokenizer, 0, "organism", "built")
    state = load_file(str(WEIGHTS_DIR / "model.safetensors"))
    for part in ("decoder", "depth_decoder", "embed_tokens"):
        getattr(built.hf, part).load_state_dict(
            {k[len(part) + 1 :]: v.float() for k, v in state.items() if k.startswith(part + ".")}, strict=True)
    codes = torch.randint(0, organism.codec.card, (2, 17, 40), generator=torch.Generator().manual_seed(0))
    codes[:, 0] = codes[:, 0] % organism.spec.text_card
    a, b = organism.forward_codes(codes), built.forward_codes(codes)
    assert torch.equal(a.text_logits, b.text_logits)
    assert torch.equal(a.audio_logits.nan_to_num(), b.audio_logits.nan_to_num())


@needs_flite
def test_a_text_no_voice_could_align_is_not_rendered_again(monkeypatch) -> None:
    """`SpeechBank.render` remembers the (voice, text) pairs an engine could not align, so `rendering` goes to
    the next voice without calling the engine again (training asks for them thousands of times)."""
    import warnings

    import duplex_steer.organism.speech as speech
    from duplex_steer.organism.speech import SpeechBank

    bank = SpeechBank(voices=("flite:kal", "flite:slt"), model_voice="flite:kal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bank.render(["Cows, they give us milk.", "I have 3 cats."], [], workers=1, progress=False)
    assert bank.renderings[("flite:kal", "I have 3 cats.")] is None  # flite reads "3" as a word we do not have

    def no_engine(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(speech, "render_corpus", no_engine)
    with pytest.raises(KeyError, match="could not be rendered in any of"):
        bank.rendering("I have 3 cats.", "flite:kal")
    assert bank.rendering("Cows, they give us milk.", "flite:slt").voice == "flite:slt"


def test_training_records_the_host_its_weights_may_depend_on() -> None:
    """training.json names the CPU beside torch's version: retrainings are bit-identical on one host only."""
    import platform

    from duplex_steer.organism.train import host_record

    host = host_record()
    assert set(host) == {"machine", "cpu", "cpu_capability"}
    assert host["machine"] == platform.machine()
    assert host["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    if Path("/proc/cpuinfo").is_file() and "model name" in Path("/proc/cpuinfo").read_text().lower():
        assert host["cpu"] and host["cpu"] in Path("/proc/cpuinfo").read_text()


def test_speech_bank_closes_pauses_in_augmented_variants_at_its_share_only() -> None:
    """`pause_share` (train-organism --pause-variants) shortens augmented variants' pauses and moves their word
    spans; clean variants and a share of 0 give the audio of before."""
    from duplex_steer.organism.speech import SpeechBank

    text = "Um, excuse me, Penguins, they live in icy places, right?"
    plain, closed, none = (SpeechBank(voices=("flite:kal",), pause_share=share) for share in (0.0, 1.0, 0.0))
    for bank in (plain, closed, none):
        bank.render([text], [], workers=1, progress=False)
    assert np.array_equal(plain.user_variant(text, 0).audio, closed.user_variant(text, 0).audio)  # clean
    for variant in (1, 2):
        a, b = plain.user_variant(text, variant), closed.user_variant(text, variant)
        assert np.array_equal(a.audio, none.user_variant(text, variant).audio)
        assert len(b.audio) < len(a.audio) and b.words == a.words
        gaps = [[s - e for (_, e), (s, _) in zip(u.spans_s, u.spans_s[1:], strict=False)] for u in (a, b)]
        assert max(gaps[1]) < 0.05 < max(gaps[0]) and b.spans_s[-1][0] < a.spans_s[-1][0]


def test_speech_bank_stores_augmented_variants_lossy_at_its_share_and_keeps_clean_ones() -> None:
    """`lossy_share` (train-organism --lossy-variants) changes only augmented variants: the same augmentation,
    stored as ogg Vorbis; clean variants and a share of 0 give the audio of before."""
    from duplex_steer.organism.speech import SpeechBank
    from duplex_steer.speech.augment import lossy_round_trip

    text = "Penguins, they live in icy places, right?"
    plain, lossy = (SpeechBank(voices=("flite:kal",), lossy_share=share) for share in (0.0, 1.0))
    for bank in (plain, lossy):
        bank.render([text], [], workers=1, progress=False)
    assert np.array_equal(plain.user_variant(text, 0).audio, lossy.user_variant(text, 0).audio)  # clean
    for variant in (1, 2):
        a, b = plain.user_variant(text, variant).audio, lossy.user_variant(text, variant).audio
        assert a.shape == b.shape and not np.array_equal(a, b)
        assert any(np.array_equal(b, lossy_round_trip(a, rate)) for rate in (16000, 24000))
