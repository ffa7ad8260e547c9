"""Learning from use: the query log, questions the document does not answer, per-document calibration."""
