"""End-to-end tests: the provider as real processes, driven by an independent OIDC client
(panva/openid-client, Node) and by a real browser (Chromium through Playwright)."""
