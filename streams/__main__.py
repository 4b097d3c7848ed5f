"""`python -m streams`: the `nearline` command."""

from streams.cli import main

main(prog_name="nearline")
