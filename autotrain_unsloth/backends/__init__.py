"""Model loading, one backend per file. Each exposes `load_model(params, plan, tokenizer, max_seq_length) -> model`, returning
the model ready to train: LoRA attached when the plan says so, every parameter trainable for full
fine-tuning. A backend follows the plan; it never decides a method or a precision."""
