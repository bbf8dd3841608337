"""Stages of the loop, each a small orchestration of domain code and io adapters."""
