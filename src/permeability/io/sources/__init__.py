"""Lab sources, one adapter a file: CSV, .xlsx, SQL (with its read-only check)."""
