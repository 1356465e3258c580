"""The robot-dog task: spoken-style commands in English and Chinese to programs of the action language.

- `generator`: the seeded dataset generator and the packaged train / validation / test splits (`data/`);
- `task`: the task as a causal-LM problem (prompt encoding, training batches, greedy generation; needs torch);
- `recipes`: the ShadowPEFT recipe and the LoRA / DoRA baselines trained on it (needs torch and peft).
"""
