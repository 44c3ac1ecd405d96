"""The `pier` command line: thin; parses arguments, fills settings, calls services."""
