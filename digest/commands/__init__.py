"""CLI command groups registered onto the Typer app by digest.cli."""
