"""Training shared by every job: probes -> batches (data), LoRA adapters (lora), losses, and the
one step loop (loop). Submodules import torch; this package file imports nothing heavy."""
