"""The decisions and audit store: reviewers' accounts, their append-only decisions and the audit of
the score records the HTTP service served, in one SQL database (a SQLite file under data/ by default,
PostgreSQL by URL). `db` declares the tables and connects, `migrations` creates and changes them
(Alembic), `store` is the one way in (`Store`), and `cli` its commands (`accounts`, `decisions export`).
The console's pages, the API's audit and `replay` all read and write it through `Store`."""
