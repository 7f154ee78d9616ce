"""Jobs that change kernels: one readable module per kind (distill, upskill, downskill)."""
