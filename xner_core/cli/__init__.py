"""The `xner` command line: thin typer commands over the library."""
