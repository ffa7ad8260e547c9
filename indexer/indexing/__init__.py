"""Building an index: parse → embed → write a generation, taking over what did not change."""
