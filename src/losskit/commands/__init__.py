"""Subcommands of the ``losskit`` CLI, one module each (``add_parser`` + ``run``)."""
