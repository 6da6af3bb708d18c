# Sourced by evaluate_organism.sh and tune_organism_steering.sh: the organism's second training seed, trained once
# into $SEED1 (sharing seed 0's tag codec; $SPEECH_CACHE, when set, reuses speech rendered by an earlier training),
# then model_for_seed S prints the model to load for seed S (0: $MODEL0, default the committed organism).
[ -f "$SEED1/model.safetensors" ] || $BIN/duplex-steer train-organism --seed 1 --codec-from duplex_steer/organism/weights \
    ${SPEECH_CACHE:+--speech-cache "$SPEECH_CACHE"} --out "$SEED1"
model_for_seed() { if [ "$1" = 1 ]; then echo "$SEED1"; else echo "${MODEL0:-organism}"; fi; }
