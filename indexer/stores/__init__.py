"""Where an index lives: the store interface, the folder store (FAISS) and PostgreSQL + pgvector."""
