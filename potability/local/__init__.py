"""Local operations: the embedded stack (PostgreSQL, MLflow, model server, functions) on one
machine."""
