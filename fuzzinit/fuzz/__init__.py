"""Long atheris campaigns: byte decoder, model-state coverage, harness,
campaign driver."""
