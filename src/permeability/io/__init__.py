"""Adapters to the outside world: sources, the feature store, MLflow, the model store, logs."""
