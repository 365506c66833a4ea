"""Serving seller-risk scores: the HTTP service, the weekly batch job and the CLI (imports `features`)."""
