"""What a finished run writes and sends, following the plan.

save.py           the model card, the merged model, run_summary.json (written last: the run is finished)
run_figures.py    the run's losses, time and speed from the trainer's final state
publish.py        push_to_hub
gguf_export.py    GGUF files for llama.cpp and Ollama; gguf_pretokenizer.py names the pre-tokenizer llama.cpp knows
                  a tokenizer by (gguf_tokenizer_hashes.py: its table)
Nothing is imported here: the plan reads names from publish.py and gguf_export.py, and save.py imports the plan.
"""
