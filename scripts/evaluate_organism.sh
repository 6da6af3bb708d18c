#!/usr/bin/env bash
# Evaluate the organism with the toolkit's own commands (the figures in README.md and the model card).
#   bash scripts/evaluate_organism.sh            # committed organism (seed 0) + a second training seed
# Needs the set-up of scripts/setup.sh. Training seed 1 takes about 10 minutes on 2 quiet cores;
# each ZBB run (100 items x 8 conditions) about 1 minute.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${OUT:-runs/organism-eval}
mkdir -p "$OUT"
# 1. ZBB, every condition and control, vector fitted on the organism's dialogue set
$BIN/zbb main --out "$OUT/zbb-seed0"
# 2. a second training seed (same codec, same data generator, other weights and episodes)
[ -f runs/organism-seed1/model.safetensors ] || $BIN/duplex-steer train-organism --seed 1 --out runs/organism-seed1
$BIN/zbb main --model runs/organism-seed1 --out "$OUT/zbb-seed1"
# 3. affinities (heatmaps, timeline) on an interruption and state inertia on 50 paired ZBB scenarios
$BIN/duplex-steer analyze --model organism --audio audio_fixtures/organism_interruption.flac --pairs 50 \
    --out "$OUT/analyze-seed0"
echo "reports: $OUT/zbb-seed0/report.md $OUT/zbb-seed1/report.md $OUT/analyze-seed0/"
