"""Models: loading bases and kernels, building the demo base."""
