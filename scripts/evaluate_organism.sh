#!/usr/bin/env bash
# Evaluate the organism with the toolkit's own commands (the figures in README.md and the model card).
#   bash scripts/evaluate_organism.sh      # committed organism (seed 0) + a second training seed (seed 1)
# Needs the set-up of scripts/setup.sh (with flite, festival and espeak-ng). On the 2-core AMD host
# (2026-12-05): the whole script 7 min 42 s with seed 1 already trained (SEED1=DIR),
#   SEED1=runs/organism-zq1 OUT=runs/organism-eval-zq SPEECH_CACHE=runs/speech-cache bash scripts/evaluate_organism.sh
# training seed 1 (sharing seed 0's tag codec) takes about 10 minutes more (about 6 more to render the speech
# otherwise); each ZBB run (100 items x 8 conditions, two processes: zbb main --workers, the default on 2
# cores) about 1.5 minutes. Rerun it to resume: finished ZBB runs are kept.
# Steering settings are the organism's defaults (layer 5 of 6, alpha 1, 3 frames), chosen on development items,
# not ZBB's (scripts/tune_organism_steering.sh, `zbb choose`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${OUT:-runs/organism-eval}
SEED1=${SEED1:-runs/organism-seed1}
HELD_OUT=zbb/renderings/festival-slt-hts   # the held-out engine (festival): never heard in training
TRAINING=zbb/renderings/flite-slt          # flite slt, a training voice (sentence by sentence, as trained)
mkdir -p "$OUT"
SPEECH_CACHE=${SPEECH_CACHE:-}              # a folder: seed 1 reuses the speech seed 0's training rendered there
source scripts/organism_seed1.sh             # trains seed 1 into $SEED1 unless there; model_for_seed S
for seed in 0 1; do
  model=$(model_for_seed "$seed")
  # ZBB, every condition and control, vector fitted on the organism's dialogue set (a training voice)
  # a finished run (its report.json) is kept: rerunning the script resumes where it stopped
  [ -f "$OUT/zbb-held-out-seed$seed/report.json" ] || \
    $BIN/zbb main --model "$model" --audio "$HELD_OUT" --out "$OUT/zbb-held-out-seed$seed"
  [ -f "$OUT/zbb-training-seed$seed/report.json" ] || \
    $BIN/zbb main --model "$model" --audio "$TRAINING" --out "$OUT/zbb-training-seed$seed"
done
# the subject-muted control (docs/zbb.md): the held-out rendering with every question's subject silenced; the
# heard - muted differences say what hearing the subject adds (`zbb compare`)
MUTED=$OUT/muted-festival-slt-hts
[ -f "$MUTED/manifest.json" ] || $BIN/zbb build --mute-subject "$HELD_OUT" --out "$MUTED"
for seed in 0 1; do
  model=$(model_for_seed "$seed")
  [ -f "$OUT/zbb-muted-seed$seed/report.json" ] || \
    $BIN/zbb main --model "$model" --audio "$MUTED" --out "$OUT/zbb-muted-seed$seed"
done
# the layer picture: affinities on a held-out-engine interruption, and the take-over lag on 50 paired ZBB
# scenarios (held-out rendering): asked while silent vs interrupted while talking vs interrupted + steered
# (gaps 0.4 s and 12 s: the organism talks right after "Tell me about X", so the short gap finds it talking and
# the long one silent again; pairs are by the state measured at each onset, see docs/probes.md)
for seed in 0 1; do
  model=$(model_for_seed "$seed")
  # the vector the ZBB runs steered with (zbb main's fit; `duplex-steer fit-vector --model "$model"` fits the same)
  $BIN/duplex-steer analyze --model "$model" --audio audio_fixtures/organism_interruption.flac --pairs 50 \
      --gaps 0.4 12 --pairs-audio "$HELD_OUT" --steer-vector "$OUT/zbb-held-out-seed$seed/perception_vector.safetensors" \
      --out "$OUT/analyze-seed$seed"
done
# the README's and the model card's figures (seed 0, the committed organism)
cp "$OUT/analyze-seed0/heatmaps.png" docs/img/organism_heatmaps.png
cp "$OUT/analyze-seed0/heatmap_pairs.png" docs/img/organism_heatmap_pairs.png
cp "$OUT/analyze-seed0/inertia_timeline.png" docs/img/organism_inertia_timeline.png
$BIN/python scripts/organism_tables.py "$OUT" --write   # the tables into README.md and the model card
echo "reports: $OUT/zbb-*/report.md $OUT/analyze-seed*/"
