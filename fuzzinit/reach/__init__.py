"""Rule coverage: which of the model's rules a search reached, and when its
triggers fired (rules.py: the rule table; markers.py: where the model's
code decides each rule; probe.py: measuring a search with coverage.py;
summary.py: the table and JSON)."""
