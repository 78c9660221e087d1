"""Sign-in with a smart card or another X.509 client certificate (R-MFA-1, R-MFA-2).

Rooms: ``certs`` (reading certificates), ``trust`` (anchors, path validation), ``revocation``
(OCSP, CRL), ``mapping`` (certificate → account), ``service/`` (the domain operations),
``models``, ``jobs``, ``cli``, ``openapi``. Pages: ``sso/views/card.py``; JSON API:
``sso/views/card_api.py``.
"""
