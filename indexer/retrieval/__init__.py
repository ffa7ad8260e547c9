"""Query → ranked entries: encoders, tokens, the lexical index, ranking, the no-match decision."""
