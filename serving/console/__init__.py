"""The reviewer console: the week's queue, a seller's page and the decisions reviewers make, kept in
a real database (SQLite under data/ by default, PostgreSQL by URL). `store` is the database side
(reviewers, append-only decisions, the audit of served records), `cli` its commands
(`accounts`, `decisions export`); the web pages are served by `seller-risk serve`."""
