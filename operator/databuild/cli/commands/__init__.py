"""One module per command: each registers its parser and runs it."""
