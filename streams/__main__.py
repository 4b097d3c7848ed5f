"""`python -m streams`: the `nearline` command."""

from streams.cli.main import main

main(prog_name="nearline")
