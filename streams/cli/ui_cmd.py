"""`segmenter ui`: the read-only web UI over Redis (SPEC section 15, docs/UI.md)."""

from __future__ import annotations

import click

from streams.cli.options import redis_option


@click.command()
@click.option("--port", envvar="SEGMENTER_UI_PORT", default=8080, show_default=True, type=int)
@click.option("--host", envvar="SEGMENTER_UI_HOST", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 in a container). Env: SEGMENTER_UI_HOST.")
@redis_option
@click.option("--redis-prefix", envvar="SEGMENTER_REDIS_PREFIX", default="segmenter", show_default=True)
@click.option("--token", envvar="SEGMENTER_UI_TOKEN", default=None,
              help="Require this token (Authorization: Bearer, or ?token= once: then a cookie). "
              "Env: SEGMENTER_UI_TOKEN.")
@click.option("--basic-auth", envvar="SEGMENTER_UI_BASIC_AUTH", default=None, metavar="USER:PASSWORD",
              help="Require HTTP basic auth with these credentials. Env: SEGMENTER_UI_BASIC_AUTH.")
@click.option("--refresh", "refresh_seconds", envvar="SEGMENTER_UI_REFRESH", default=10.0, show_default=True,
              type=click.FloatRange(min=1), help="Seconds between the pages' own refreshes.")
@click.option("--scan-interval", envvar="SEGMENTER_UI_SCAN_INTERVAL", default=60.0, show_default=True,
              type=click.FloatRange(min=1), help="Seconds between background scans for dimensions and days.")
@click.option("--sample", "sample_size", envvar="SEGMENTER_UI_SAMPLE", default=1000, show_default=True,
              type=click.IntRange(min=1, max=100_000), help="Customers sampled for the RFM view.")
def ui(
    port: int,
    host: str,
    redis_url: str,
    redis_prefix: str,
    token: str | None,
    basic_auth: str | None,
    refresh_seconds: float,
    scan_interval: float,
    sample_size: int,
) -> None:
    """Serve the read-only web UI: tier distributions, sizes and flows over days, RFM, customer pages."""
    import uvicorn

    from streams.ui.app import Settings, create_app

    if token and basic_auth:
        raise click.UsageError("give --token or --basic-auth, not both")
    if basic_auth is not None and ":" not in basic_auth:
        raise click.BadParameter("expected USER:PASSWORD", param_hint="--basic-auth")
    settings = Settings(
        redis_url=redis_url, prefix=redis_prefix, token=token or None, basic_auth=basic_auth or None,
        refresh_seconds=refresh_seconds, scan_interval=scan_interval, sample_size=sample_size,
    )
    where = redis_url.split("@")[-1]
    click.echo(f"segmenter ui on http://{host}:{port}/ (Redis {where}, prefix {redis_prefix})", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
