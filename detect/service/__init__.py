"""Detection's rules in code: no Flask here (pages and the API call these)."""
