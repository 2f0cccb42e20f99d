"""Outputs: replayable traces (corpus/) and reports (reports/)."""
