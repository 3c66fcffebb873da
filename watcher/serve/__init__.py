"""`epochwatch serve`: a small web application to watch runs and review their epochs."""
