"""Conformance report per rulebook (R-* rules with live evidence): ``iam conformance report``.

Rooms: :mod:`~iam.conformance.catalogue` (the rulebooks as data, ``policies/conformance/``),
:mod:`~iam.conformance.evidence` (the checks; features register theirs),
:mod:`~iam.conformance.service` (building and recording a report),
:mod:`~iam.conformance.render` (HTML, PDF), :mod:`~iam.conformance.cli`.
"""
