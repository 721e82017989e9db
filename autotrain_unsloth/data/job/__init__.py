"""The data's side of the training job: splits loaded, the tokenizer set up, text rendered, tokenized and cut into
blocks, conversations tokenized with response-only labels, preference rows built. Nothing here imports from
data/prepare/: the job follows what the parent prepared."""
