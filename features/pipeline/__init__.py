"""The feature pipeline: the feature spec (each feature's role and standard), the daily flows and the
SQL over them, point-in-time snapshots with labels, and the same SQL on Spark."""
