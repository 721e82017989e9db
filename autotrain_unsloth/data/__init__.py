"""Data, from the user's files to the rows a trainer consumes, split by the process that runs it.

prepare/  the process that launches the job (`aitraining`, `AutoTrainProject.create()`): the data path and
          files checked, settings settled, local files saved as `{project}/autotrain-data`, the training split
          counted for the plan.
job/      the training job: splits loaded, the tokenizer set up, text rendered, tokenized and cut into blocks,
          preference rows built.
Here, what both use: the file formats read (files.py), conversation cells (conversations.py), chat templates
by name (chat_templates.py) and the row checks (checks.py). job/ imports nothing from prepare/.
"""
