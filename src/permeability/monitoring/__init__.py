"""How a version does after training: metrics, drift, evaluation, champion/challenger comparison."""
