"""Training and the trained model: the catalogue, the predictor, conformal intervals, the fast paths."""
