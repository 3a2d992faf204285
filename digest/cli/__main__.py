"""`python -m digest.cli`: the same program as the `digest` console script."""

from digest.cli.app import main

main()
