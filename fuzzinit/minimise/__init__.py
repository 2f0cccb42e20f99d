"""Minimisers: from a failing ordering to its causal core."""
