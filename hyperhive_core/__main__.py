"""`python -m hyperhive_core` is `hivectl`."""

from hyperhive_core.cli import main

main()
