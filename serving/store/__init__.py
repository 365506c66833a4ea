"""The decisions and audit store: reviewers' accounts, their append-only decisions and the audit of
the score records the HTTP service served, in one SQL database (a SQLite file under data/ by default,
PostgreSQL by URL), with the console's sessions and sign-in attempts. `db` declares the tables and
connects, `migrations` creates and changes them (Alembic), `store` is the one way in (`Store`), `chain`
the tamper-evident hash chains and their check, `archive` the retention of served records (Parquet files
and checkpoints), `access` sign-in throttling, and `cli` the commands (`accounts`, `decisions export`,
`audit verify`, `audit archive`).
The console's pages, the API's audit and `replay` all read and write it through `Store`."""
