"""The lab record: its columns, how cells are read, the rules a clean one obeys, its identity and structure."""
