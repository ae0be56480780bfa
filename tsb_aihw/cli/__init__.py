"""Command-line interface: ``tsb-aihw <command>``; one module per command."""
