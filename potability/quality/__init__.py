"""Quality control: live precision against lab samples, drift, the QC job and its tables."""
