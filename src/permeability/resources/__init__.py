"""Data files shipped inside the package (read with :mod:`importlib.resources`, never by path).

``specs.yaml``: the embedded default specification limits used when no specs file is set.
"""
