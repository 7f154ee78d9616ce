"""``python -m kernel_lifecycle.cli`` runs the CLI (used where the console script is not on PATH)."""

from kernel_lifecycle.cli.app import main

main()
