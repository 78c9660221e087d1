"""Backup and restore (R-OPS-1, R-OPS-2): ``iam backup create|verify|restore|drill``.

Rooms: :mod:`iam.backup.archive` (the encrypted file), :mod:`iam.backup.dump` (the database),
:mod:`iam.backup.service` (what the commands do), :mod:`iam.backup.cli`, :mod:`iam.backup.jobs`.
Features register steps to run after a restore with :func:`iam.backup.service.after_restore`.
"""
