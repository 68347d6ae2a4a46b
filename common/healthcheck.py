"""Container health probe: `python -m common.healthcheck [URL]`, exit 0 when URL answers 2xx.

The image has no curl; this uses only the standard library so a probe costs one short-lived
interpreter and no project imports. Without URL it probes HEALTHCHECK_URL, else the agent
worker's health server: the one image runs every service, so a container started with another
command sets HEALTHCHECK_URL (for example http://127.0.0.1:3000/healthz for the token server).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8081/"
TIMEOUT_SECONDS = 3.0


def probe(url: str) -> str | None:
    """None when healthy, else a one-line reason."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except (OSError, ValueError) as error:
        return f"{url}: {type(error).__name__}: {getattr(error, 'reason', error)}"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def main(argv: list[str]) -> int:
    problem = probe(argv[0] if argv else os.environ.get("HEALTHCHECK_URL") or DEFAULT_URL)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
