"""Mint refresh tokens for the refresh benchmark against our provider.

Builds the same services as the server from the ``IAM_*`` environment (bench/run.py passes the
throwaway instance's) and writes COUNT fresh refresh tokens, one per line::

    python bench/mint_refresh.py --client-id ID --count 20000 --out tokens.txt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.count <= 0:
        parser.error("--count must be positive")

    from iam.config import load_settings
    from iam.services import Services
    from sso.service import mint_refresh_tokens_for_benchmark

    started = time.monotonic()
    services = Services(load_settings())
    try:
        tokens = mint_refresh_tokens_for_benchmark(services, client_id=args.client_id, count=args.count)
    finally:
        services.dispose()

    if len(tokens) != args.count or len(set(tokens)) != len(tokens):
        print(
            f"mint_refresh: asked for {args.count} distinct tokens, got {len(set(tokens))}",
            file=sys.stderr,
        )
        return 1
    if any(not t or "\n" in t for t in tokens):
        print("mint_refresh: empty token or token with a newline", file=sys.stderr)
        return 1
    args.out.write_text("".join(f"{t}\n" for t in tokens), encoding="ascii")
    print(f"minted {len(tokens)} refresh tokens in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
