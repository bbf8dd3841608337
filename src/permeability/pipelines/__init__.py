"""The stages of the loop, one a file: each a small orchestration of pure code and io adapters."""
