"""The one command line: the Typer app and its commands, in the order ``--help`` lists them.

The commands live by subject (:mod:`~permeability.cli.data`, :mod:`~permeability.cli.models`,
:mod:`~permeability.cli.services`); each parses its options, calls a pipeline or a runtime
function and prints the result (:mod:`~permeability.cli.output`). Every command that produces a
result accepts ``--json`` and then prints it as one JSON object on the last line of standard
output. Failures exit non-zero with a one-line reason on stderr.
"""

from __future__ import annotations

import typer

from permeability.cli import data, models, notify, services

app = typer.Typer(
    name="permeability",
    help="Guide values for film permeability (WVTR) and the MLOps loop behind them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.command("generate-data")(data.generate_data)
app.command()(data.acquire)
app.command()(services.schedule)
app.command()(data.compact)
app.command()(models.train)
app.command()(models.promote)
app.command()(models.versions)
app.command()(services.serve)
app.command()(services.ui)
app.command()(models.evaluate)
app.command()(models.retrain)
app.command()(models.predict)
app.command()(services.up)
app.command()(notify.notify)
