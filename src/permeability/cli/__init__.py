"""The one command line: parses, dispatches to a pipeline or the runtime, prints the result."""
