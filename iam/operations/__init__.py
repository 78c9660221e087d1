"""The console's Operations pages (core): jobs, workers, effective settings, health."""
