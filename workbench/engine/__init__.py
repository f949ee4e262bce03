"""The training engine: runs, the Trainer bridge, the run folder, sampling."""
