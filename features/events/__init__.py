"""The marketplace events: the canonical tables (schema) and the validator that names the table,
column and rows of every problem."""
