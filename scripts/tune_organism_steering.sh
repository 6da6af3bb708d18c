#!/usr/bin/env bash
# Choose the organism's steering settings on development items, never on ZBB (the development protocol,
# docs/zbb.md "Choosing steering settings"): items about the world's 24 training-only subjects (none is a ZBB
# subject or fact), rendered in a training voice that ZBB's tables do not use (flite awb), a sweep of layer x
# alpha per training seed, and one rule applied to both seeds (`zbb choose`, zbb/sweep_choice.py).
#   bash scripts/tune_organism_steering.sh        # committed organism (seed 0) + seed 1 (evaluate_organism.sh's)
#   MODEL0=runs/organism-zy0 SEED1=runs/organism-zy1 OUT=runs/organism-dev-zy bash scripts/tune_organism_steering.sh
#                                                 # any two trained seeds (MODEL0 replaces the committed organism)
# The choice is a candidate for duplex_steer/organism/settings.py STEERING_DEFAULTS, measured on ZBB by
# evaluate_organism.sh once set there (model card, "Steering settings": the first rule's choice was not adopted).
# Rerun it to resume: finished sweep cells are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${OUT:-runs/organism-dev}
SEED1=${SEED1:-runs/organism-seed1}
SPEECH_CACHE=${SPEECH_CACHE:-}
VOICE=awb                              # a training voice (flite); ZBB's training-voice table uses slt
ITEMS=$OUT/dev-items.jsonl
AUDIO=$OUT/flite-$VOICE
mkdir -p "$OUT"
$BIN/duplex-steer organism-dev-items --out "$ITEMS"
[ -f "$AUDIO/manifest.json" ] || $BIN/zbb build --tts flite --voice "$VOICE" --item-bank "$ITEMS" --out "$AUDIO"
source scripts/organism_seed1.sh             # trains seed 1 into $SEED1 unless there; model_for_seed S
for seed in 0 1; do
  model=$(model_for_seed "$seed")
  # one vector per layer, fitted as zbb main fits its one (the organism's dialogue set, no item of any bank)
  [ -f "$OUT/vector-seed$seed.safetensors" ] || \
    $BIN/duplex-steer fit-vector --model "$model" --layers 0 1 2 3 4 5 --batch-size 8 --out "$OUT/vector-seed$seed.safetensors"
  $BIN/zbb sweep --model "$model" --vector "$OUT/vector-seed$seed.safetensors" --item-bank "$ITEMS" --audio "$AUDIO" \
      --conditions no_interrupt interrupt buffered interrupt+steer interrupt+random no_interrupt+steer buffered+steer \
      --layers 0 1 2 3 4 5 \
      --alphas 0.5 1 2 --spans 3 --repetitions 2 --limit 0 --out "$OUT/sweep-seed$seed"
done
$BIN/zbb choose "$OUT/sweep-seed0" "$OUT/sweep-seed1" --out "$OUT/choice"
