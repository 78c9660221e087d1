"""Second factors (TOTP, recovery codes) and levels of assurance (``acr``/``amr``, R-MFA-3/4).

Rooms: ``levels`` (pure rules: which ``acr`` a set of ``amr`` values reaches, what a request
needs), ``hooks`` (how other sign-in methods, e.g. smart cards, plug into the step-up and
"my security devices" pages), ``models``, ``service`` (TOTP and recovery codes), ``cli``.
"""
