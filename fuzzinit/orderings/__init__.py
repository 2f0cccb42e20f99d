"""Orderings: which sequences of events a scenario allows, and how to draw them."""
