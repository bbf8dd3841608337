"""Pure domain code: no I/O, no MLflow, no FastAPI, no storage."""
