"""The data's side of the process that launches the training job: before the job starts, the user's data is
checked, the settings that train it settled, local files saved as `{project}/autotrain-data`, and the training
split counted for the plan's step schedule."""
