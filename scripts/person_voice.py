"""What the organism's codec hears in a person's voice: ALSA's speaker-test recordings (a Debian package).

Debian's `alsa-utils` ships ALSA's speaker-test recordings, a person saying "Front right", "Rear left" and so
on (`/usr/share/sounds/alsa/*.wav`, 48 kHz). Of their words only "right" is in the organism's world (every ZBB
query ends with "..., right?"), so this is a small check, not a measure of hearing: for each recording it
prints codebook 0's word per 80 ms frame and whether "right" is named on most of the frames where it is
spoken, and how often it names "right" where the person says "left" or "center" instead (the codec has a class
for every word of its world and none for other words, so it always names some world word).

    apt-get download alsa-utils && dpkg -x alsa-utils_*.deb /tmp/alsa
    .venv/bin/python scripts/person_voice.py /tmp/alsa/usr/share/sounds/alsa [--codec duplex_steer/organism/weights]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    import librosa
    import numpy as np
    import soundfile as sf

    from duplex_steer.audio import FRAME_SAMPLES, SAMPLE_RATE
    from duplex_steer.engine.tag_codec import SILENCE, load_small_codec
    from duplex_steer.organism.checkpoint import WEIGHTS_DIR

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the folder of ALSA's speaker-test WAVs")
    parser.add_argument("--codec", type=Path, default=WEIGHTS_DIR, help="an organism checkpoint folder")
    args = parser.parse_args()
    names = sorted(args.folder.glob("*.wav"))
    if not names:
        raise SystemExit(f"no WAV files in {args.folder}: extract alsa-utils first (see this script's docstring)")
    codec = load_small_codec(args.codec)
    heard, right_frames = 0, {}
    spoken = [p for p in names if p.stem.endswith("_Right")]
    for path in names:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = librosa.resample(audio.mean(1), orig_sr=rate, target_sr=SAMPLE_RATE)
        tags = codec.tag_logits(np.pad(audio, (0, FRAME_SAMPLES))[None])[0].argmax(-1).tolist()
        words = [codec.labels[t] for t in tags]
        said = [w for w in words if w != SILENCE]
        top = Counter(said).most_common(3)
        line = " ".join(w if w != SILENCE else "." for w in words)
        right_frames[path.stem] = words.count("right")
        if path in spoken:
            heard += int("right" in dict(top[:2]))
        print(f"{path.stem:12s} {line}\n{'':12s} most named: {top}")
    print(f"\n'right' among the two most named words in {heard} of {len(spoken)} recordings that say it")
    for side in ("Right", "Left", "Center"):
        counts = [n for stem, n in right_frames.items() if stem.endswith(side)]
        print(f"frames named 'right' in the recordings saying '{side.lower()}': {counts}")


if __name__ == "__main__":
    main()
