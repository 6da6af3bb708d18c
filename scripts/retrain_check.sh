#!/usr/bin/env bash
# Retrain the organism with the committed recipe (seed 0) on this machine, time it, and run ZBB on the
# committed organism and on the retrained one side by side (held-out engine: festival; a training voice:
# flite slt): does one command reproduce the committed quality, and within the 60-minute budget?
#   bash scripts/retrain_check.sh            # -> runs/retrain-check/{train.log, <model>-<rendering>/report.md}
#   OUT=runs/retrain-f1 bash scripts/retrain_check.sh --false-descriptions 1   # a recipe variant: arguments go
#                                                                              # to train-organism
# It also compares the retrained weights with the committed ones, tensor by tensor (scripts/compare_weights.py).
# About 27 minutes for the training and 4 for the four ZBB runs on the 2-core Intel host of 2026-12-02;
# 23 minutes for the training (the speech rendered in the run, from a fresh clone) and 4 for the four
# ZBB runs on the 2-core AMD host of 2026-12-04, alone.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${OUT:-runs/retrain-check}
mkdir -p "$OUT"
start=$SECONDS
HF_HUB_OFFLINE=1 $BIN/duplex-steer train-organism --seed 0 "$@" --out "$OUT/retrained" 2> "$OUT/train.log"
echo "retraining took $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s (wall, set-up included)"
$BIN/python scripts/compare_weights.py duplex_steer/organism/weights "$OUT/retrained" || true
for model in organism "$OUT/retrained"; do
  for rendering in festival-slt-hts flite-slt; do
    dst="$OUT/$(basename "$model")-$rendering"
    HF_HUB_OFFLINE=1 $BIN/zbb main --model "$model" --audio "zbb/renderings/$rendering" --out "$dst" > "$dst.log" 2>&1
    echo "== $(basename "$model") on $rendering"
    grep -E "^\| (no_interrupt|interrupt|interrupt\+steer|interrupt\+random|interrupt\+mistimed) \|" "$dst/report.md" \
      | cut -d'|' -f2-5
    grep -E "^\| interrupt\+(steer|random|mistimed) \| IWOR" "$dst/report.md" | cut -d'|' -f2,6,7
  done
done
