"""Using a trained model: the estimator, predictions, recommendations, similar items, evaluation,
metrics and the model file."""
