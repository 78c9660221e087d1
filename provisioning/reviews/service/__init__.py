"""Domain logic of access reviews (no Flask): catalogue, reviewers, campaigns, decisions,
remediation and the auditor's report."""
