"""Access reviews (recertification): twelve-monthly and quarterly campaigns over every right a
person holds across their accounts, reviews on every change (mover, rehire, break-glass,
out-of-band), decisions with helpers and a recommendation, revocation carried into the
directory and read back, and evidence for the auditor (R-REV-1..3, R-JML-4, R-PIM-6)."""
