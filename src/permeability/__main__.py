"""``python -m permeability``: the same CLI, for subprocesses started with this interpreter."""

from permeability.cli.main import app

app()
