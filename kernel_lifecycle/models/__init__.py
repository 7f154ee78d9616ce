"""Models: base specs (``bases``), device and dtype (``device``), loading bases and kernels
(``loading``), prompt formats (``prompting``), the tokenizer recipe (``tokenizer``)."""
