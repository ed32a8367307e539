"""Where the PostgreSQL-marked tests find their server."""

import os


def postgres_url():
    """The PostgreSQL URL tests may use (``TUNEKIT_TEST_POSTGRES_URL``), or None: they skip."""
    return os.environ.get("TUNEKIT_TEST_POSTGRES_URL")


def reachable_postgres_url() -> str:
    """The PostgreSQL URL, once a storage opens on it; the calling test skips otherwise."""
    import pytest

    from tunekit.storage import make_storage

    url = postgres_url()
    if not url:
        pytest.skip("TUNEKIT_TEST_POSTGRES_URL is not set")
    try:
        make_storage(url, heartbeat_interval=0)
    except ValueError as err:
        pytest.skip(f"PostgreSQL is not reachable: {err}")
    return url
