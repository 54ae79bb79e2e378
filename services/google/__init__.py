"""Google Workspace adapters' shared plumbing: API clients and credentials."""
