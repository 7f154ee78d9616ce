"""The ``kernel-lifecycle`` command line: one module per command group, thin by design."""
