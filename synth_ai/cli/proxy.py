"""`--forwarded-allow-ips`: which proxies a server believes about the original request.

uvicorn takes the scheme and client address from `X-Forwarded-Proto` / `X-Forwarded-For` only
when they come from these addresses; so a page served over https by a proxy named here gets a
`Secure` session cookie, and a proxy not named cannot make a plain-http request pass for https.
"""

from __future__ import annotations

import click

forwarded_allow_ips_option = click.option(
    "--forwarded-allow-ips",
    default=None,
    metavar="ADDRESSES",
    help="Proxies whose X-Forwarded-Proto/-For are believed (comma-separated addresses or "
    "networks, '*' for any); the sign-in cookie is Secure when the page came over https "
    "through one. Default: $FORWARDED_ALLOW_IPS, else 127.0.0.1,::1 (uvicorn's).",
)
