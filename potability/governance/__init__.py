"""Model governance: the pipeline-run record, operators' control of the model, its public
history."""
