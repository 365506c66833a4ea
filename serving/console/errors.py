"""What a console page can refuse to show, as exceptions the pages raise and `Console.guarded` turns
into a 4xx page that says what was wrong."""

from __future__ import annotations


class NotFound(LookupError):
    """A week, seller or record the tables do not hold; the message says which and what there is."""


class BadInput(ValueError):
    """A query or form value that cannot be read (a week that is not a date, an unknown action...)."""
