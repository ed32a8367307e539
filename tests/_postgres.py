"""Where the PostgreSQL-marked tests find their server."""

import os


def postgres_url():
    """The PostgreSQL URL tests may use (``TUNEKIT_TEST_POSTGRES_URL``), or None: they skip."""
    return os.environ.get("TUNEKIT_TEST_POSTGRES_URL")
