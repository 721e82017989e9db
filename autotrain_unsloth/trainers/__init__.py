"""One trainer per file on a shared skeleton (recipe.py): `default` (causal LM on raw text in blocks), `sft`
(TRL's SFTTrainer), `dpo`, `orpo` and `reward` (TRL's preference trainers). Each module is an interfaces.Recipe;
`clm/__main__.py` is the child-process entry that runs the plan's one."""
