"""The `nearline` command: one module per group of subcommands, loaded on first use.

Each command parses its options and calls a plain function of the packages below it.
"""

from streams.cli.main import main

__all__ = ["main"]
