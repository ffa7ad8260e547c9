"""Documents → records: reading files, entry styles, where every line went, plain text."""
