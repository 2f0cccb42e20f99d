"""Exhaustive exploration: every ordering a scenario allows, up to bounds."""
