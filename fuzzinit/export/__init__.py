"""Exports of a scenario for other tools: a Promela model for SPIN."""
