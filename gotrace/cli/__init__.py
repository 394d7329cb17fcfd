"""The gotrace command: its subcommands, configuration and what they print."""
