"""The one command line: parses, dispatches to a pipeline or service, prints the result."""
