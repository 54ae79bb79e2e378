"""Admin HTTP API for operators: job queries, the review queue and reviewer actions."""
