"""The demo: skills data, the stand-in base model, the quickstart."""
