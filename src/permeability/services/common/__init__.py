"""What both services share: the error contract, the body limit, dependencies and token auth."""
