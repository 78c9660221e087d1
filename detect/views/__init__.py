"""Detection's pages (alerts, directory changes, statistics) and its JSON API."""
