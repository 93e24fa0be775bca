"""Intelligence on the record: cloned plates (``clones``, its index ``cloneindex``), the numbers for
command (``stats``) and the ring's geography (``ring``, with the shipped ``ring-checkpoints.csv``)."""
