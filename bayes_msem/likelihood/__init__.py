"""Likelihood strategies: each turns the model-implied moments and the data into a log-likelihood."""
