"""duplex_steer.speech.augment: speed, gain, noise and room variation for training speech."""

from __future__ import annotations

import numpy as np
import pytest

from duplex_steer.audio import SAMPLE_RATE
from duplex_steer.speech.aligned import AlignedUtterance
from duplex_steer.speech.augment import (
    PEAK,
    Augmentation,
    AugmentationError,
    apply_augmentation,
    augment_utterance,
    close_pauses,
    draw_augmentation,
    lossy_round_trip,
)


def bursts(spans_s: list[tuple[float, float]], total_s: float = 1.5, amplitude: float = 0.3) -> np.ndarray:
    """Silence with a 300 Hz tone inside each span: where the "words" are is visible in the energy."""
    audio = np.zeros(int(total_s * SAMPLE_RATE), dtype=np.float32)
    for start, end in spans_s:
        idx = np.arange(int(start * SAMPLE_RATE), int(end * SAMPLE_RATE))
        audio[idx] = amplitude * np.sin(2 * np.pi * 300 * idx / SAMPLE_RATE)
    return audio


def utterance() -> AlignedUtterance:
    spans = [(0.1, 0.4), (0.7, 1.2)]
    return AlignedUtterance("hello world", "test", bursts(spans), ["hello", "world"], spans)


def test_the_same_augmentation_gives_the_same_audio_and_another_seed_other_noise() -> None:
    audio = utterance().audio
    aug = Augmentation(speed=1.05, gain_db=-3.0, snr_db=20.0, noise="pink", rt60_s=0.2, seed=7)
    first, second = apply_augmentation(audio, aug), apply_augmentation(audio, aug)
    assert np.array_equal(first, second)
    other = apply_augmentation(audio, Augmentation(1.05, -3.0, 20.0, "pink", 0.2, seed=8))
    assert first.shape == other.shape and not np.array_equal(first, other)


def test_speed_shortens_the_audio_and_scales_the_spans() -> None:
    utt = utterance()
    out = augment_utterance(utt, Augmentation(speed=1.1))
    assert abs(len(out.audio) - len(utt.audio) / 1.1) <= 1
    np.testing.assert_allclose(out.spans_s, [(a / 1.1, b / 1.1) for a, b in utt.spans_s], rtol=1e-9)
    assert out.words == utt.words and out.text == utt.text
    # the tone is where the scaled spans say: loud inside them, silent well outside them
    for start, end in out.spans_s:
        inside = out.audio[int((start + 0.02) * SAMPLE_RATE) : int((end - 0.02) * SAMPLE_RATE)]
        assert np.sqrt(np.mean(inside**2)) > 0.15
    gap = out.audio[
        int((out.spans_s[0][1] + 0.05) * SAMPLE_RATE) : int((out.spans_s[1][0] - 0.05) * SAMPLE_RATE)
    ]
    assert np.max(np.abs(gap)) < 1e-3


def test_gain_is_exact() -> None:
    audio = utterance().audio
    out = apply_augmentation(audio, Augmentation(gain_db=-6.0))
    np.testing.assert_allclose(out, audio * 10 ** (-6 / 20), rtol=1e-6, atol=1e-7)


def test_loud_gain_is_scaled_down_to_the_peak_never_clipped() -> None:
    audio = utterance().audio  # peak 0.3
    out = apply_augmentation(audio, Augmentation(gain_db=12.0))
    assert np.max(np.abs(out)) == pytest.approx(PEAK, abs=1e-6)
    np.testing.assert_allclose(out, audio * (PEAK / np.max(np.abs(audio))), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("noise", ["white", "pink"])
@pytest.mark.parametrize("snr_db", [12.0, 30.0])
def test_noise_is_added_at_the_asked_snr(noise: str, snr_db: float) -> None:
    audio = utterance().audio
    out = apply_augmentation(audio, Augmentation(snr_db=snr_db, noise=noise, seed=3))
    added = out - audio
    achieved = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2))
    assert abs(achieved - snr_db) < 1.0
    spectrum = np.abs(np.fft.rfft(added)) ** 2
    freqs = np.fft.rfftfreq(len(added), 1 / SAMPLE_RATE)
    low, high = (
        spectrum[(freqs > 50) & (freqs < 500)].mean(),
        spectrum[(freqs > 5000) & (freqs < 10000)].mean(),
    )
    if noise == "pink":  # 1/f: about 20 times more power per bin at ~250 Hz than at ~7 kHz
        assert low > 8 * high
    else:
        assert 0.5 < low / high < 2


def test_a_room_lengthens_the_tail_and_keeps_the_direct_sound() -> None:
    audio = utterance().audio
    short = apply_augmentation(audio, Augmentation(rt60_s=0.1, seed=1))
    long = apply_augmentation(audio, Augmentation(rt60_s=0.4, seed=1))
    assert len(short) == len(audio) + int(0.1 * SAMPLE_RATE) - 1
    assert len(long) == len(audio) + int(0.4 * SAMPLE_RATE) - 1

    def energy_after(x: np.ndarray, from_s: float, to_s: float) -> float:
        return float(np.sum(x[int(from_s * SAMPLE_RATE) : int(to_s * SAMPLE_RATE)].astype(np.float64) ** 2))

    # after the last burst ends (1.2 s), reverberation rings on; longer with the longer RT60
    assert energy_after(long, 1.3, 1.5) > 10 * energy_after(short, 1.3, 1.5) > 0
    # the first 2 ms are the direct path alone
    np.testing.assert_allclose(long[: int(0.002 * SAMPLE_RATE)], audio[: int(0.002 * SAMPLE_RATE)], atol=1e-6)


def test_drawn_augmentations_stay_in_their_documented_ranges() -> None:
    augs = [draw_augmentation(np.random.default_rng(0)) for _ in range(2)]
    assert augs[0] == augs[1]  # the generator alone decides
    rng = np.random.default_rng(1)
    augs = [draw_augmentation(rng) for _ in range(400)]
    assert all(0.88 <= a.speed <= 1.12 and -10 <= a.gain_db <= 4 for a in augs)
    noisy = [a for a in augs if a.snr_db is not None]
    rooms = [a for a in augs if a.rt60_s is not None]
    assert 0.4 < len(noisy) / len(augs) < 0.6 and 0.3 < len(rooms) / len(augs) < 0.5
    assert all(12 <= a.snr_db <= 40 for a in noisy) and all(0.1 <= a.rt60_s <= 0.5 for a in rooms)
    assert {a.noise for a in noisy} == {"white", "pink"}


def test_bad_settings_get_one_clear_error() -> None:
    with pytest.raises(AugmentationError, match="noise 'brown'"):
        Augmentation(noise="brown")
    with pytest.raises(AugmentationError, match="speed"):
        Augmentation(speed=0.0)
    with pytest.raises(AugmentationError, match="rt60_s"):
        Augmentation(rt60_s=-1.0)
    with pytest.raises(AugmentationError, match="lossy_rate 100"):
        Augmentation(lossy_rate=100)


def test_lossy_storage_keeps_length_and_words_and_changes_the_samples() -> None:
    audio = bursts([(0.1, 0.4), (0.7, 1.2)]) + 0.01 * np.random.default_rng(0).standard_normal(36000).astype(np.float32)
    for rate in (16000, 24000):
        out = lossy_round_trip(audio, rate)
        assert out.dtype == np.float32 and out.shape == audio.shape
        assert not np.array_equal(out, audio)  # the codec's artefacts
        snr = 10 * np.log10(np.sum(audio**2) / np.sum((out - audio) ** 2))
        assert snr > 10  # the speech is kept
        assert np.abs(out[int(0.5 * SAMPLE_RATE) : int(0.6 * SAMPLE_RATE)]).max() < 0.1  # silence stays quiet
    assert np.array_equal(lossy_round_trip(audio, 16000), lossy_round_trip(audio, 16000))  # reproducible
    plain = apply_augmentation(audio, Augmentation(seed=3))
    stored = apply_augmentation(audio, Augmentation(seed=3, lossy_rate=16000))
    assert np.array_equal(stored, lossy_round_trip(plain, 16000))  # the last step


def test_lossy_storage_is_drawn_after_everything_else() -> None:
    before = [draw_augmentation(np.random.default_rng(s)) for s in range(50)]
    never = [draw_augmentation(np.random.default_rng(s), lossy_probability=0.0) for s in range(50)]
    always = [draw_augmentation(np.random.default_rng(s), lossy_probability=1.0) for s in range(50)]
    assert never == before and all(a.lossy_rate is None for a in before)  # 0: the augmentations of before
    assert [a.__class__(**{**a.__dict__, "lossy_rate": None}) for a in always] == before
    assert {a.lossy_rate for a in always} == {16000, 24000}
    some = [draw_augmentation(np.random.default_rng(s), lossy_probability=0.5) for s in range(400)]
    assert 0.4 < sum(a.lossy_rate is not None for a in some) / 400 < 0.6


def test_closing_pauses_cuts_only_silence_between_words_and_moves_the_spans() -> None:
    spans = [(0.1, 0.4), (0.7, 1.2), (1.21, 1.4)]  # gaps of 300 ms and 10 ms
    utt = AlignedUtterance("a b c", "test", bursts(spans), ["a", "b", "c"], spans)
    closed = close_pauses(utt, np.random.default_rng(0))
    gap = closed.spans_s[1][0] - closed.spans_s[0][1]
    assert 0.005 - 1e-9 <= gap <= 0.04 + 1e-4  # the long pause is cut to 5-40 ms
    assert closed.spans_s[2][0] - closed.spans_s[1][1] == pytest.approx(0.01)  # a short one is left alone
    assert closed.spans_s[0] == spans[0] and closed.words == utt.words
    removed = len(utt.audio) - len(closed.audio)
    assert removed / SAMPLE_RATE == pytest.approx(0.3 - gap, abs=2 / SAMPLE_RATE)
    for (a, b), (c, _) in zip(spans, closed.spans_s, strict=True):  # every word's samples are kept exactly
        n = int(round((b - a) * SAMPLE_RATE)) - 2
        i, j = int(round(a * SAMPLE_RATE)) + 1, int(round(c * SAMPLE_RATE)) + 1
        assert np.array_equal(utt.audio[i : i + n], closed.audio[j : j + n])
    assert np.array_equal(utt.audio[-1000:], closed.audio[-1000:])  # the tail after the last word is kept
    again = close_pauses(utt, np.random.default_rng(0))
    assert np.array_equal(again.audio, closed.audio)  # reproducible given the generator
