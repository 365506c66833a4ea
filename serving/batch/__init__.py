"""The weekly batch scoring job (`job`), its steps in rooms of their own (the snapshot, the drift
reference, last week's scores, the week's ranking, the score table, the MLflow run, stopping) and
the run summary it prints and logs (`summary` computes the figures, `report` assembles them)."""
