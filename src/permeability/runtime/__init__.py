"""Processes that run the stages and services: the scheduler and the multi-worker server."""
