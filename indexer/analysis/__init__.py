"""Views over an index: topics, the map, near-duplicates; evaluation on labelled queries."""
