"""One trainer per file: `default` (causal LM on raw text in blocks) and `sft` (TRL's SFTTrainer).
Each exposes `train(params, plan, backend)`; `clm/__main__.py` is the child-process entry that picks one."""
