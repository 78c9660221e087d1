"""Access requests' rules: asking (``asking``), deciding within working-day deadlines
(``deciding``), carrying the decision into AD and ending time-limited grants (``fulfilment``)."""
