"""Committed recordings of duplex-steer, shipped as package data (found through `duplex_steer.resources`).

- `dialogues/`: 25 espeak-ng dialogues of 4 user turns each, for fitting steering vectors
  (`duplex_steer.speech.dialogues`);
- `organism_dialogues/`: 16 dialogues with turns the organism understands (`duplex_steer.organism.fixtures`);
- `interruption_example.ogg`, `organism_interruption.flac`: one interrupted conversation each, with its
  timings in the `.json` beside it (the default recording of the CLI and the demo).
"""
