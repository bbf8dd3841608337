"""From a clean record to the model's numbers: physics features, caliper PCA, structure levels."""
