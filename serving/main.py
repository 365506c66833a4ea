"""The one composition root: `seller-risk` is the commands each package owns, assembled here, in
the order of the data flow (features, then training, then serving). The only module of `serving`
that imports `training`; every command imports its work lazily, so `--help` stays fast."""

from __future__ import annotations

import typer

from features.cli import commands as feature_commands
from serving.cli import commands as serving_commands
from serving.store.cli import groups as store_groups
from training.cli import commands as training_commands

app = typer.Typer(
    help="Seller risk scoring: simulate a marketplace, validate events, build features, train and promote "
         "models, score a week, serve over HTTP and the reviewer console, manage reviewer accounts and decisions.",
    no_args_is_help=True,
    add_completion=False,
)
for group in (feature_commands, training_commands, serving_commands):
    app.registered_commands += group.registered_commands
for name, sub in store_groups:  # accounts add|list, decisions export
    app.add_typer(sub, name=name)


if __name__ == "__main__":  # pragma: no cover
    app()
