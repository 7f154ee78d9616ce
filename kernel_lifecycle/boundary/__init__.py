"""The boundary regression harness: skills, scorers, sandbox, generation, metrics, checks, reports."""
