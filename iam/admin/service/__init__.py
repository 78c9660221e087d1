"""The console's rules, without Flask: people (search, a person's page, help-desk actions) and
the audit search."""
