"""TLS to the hive's PostgreSQL database, as the README documents it: `sslmode=verify-full` with the CA
in `sslrootcert=`, against a server that takes TLS only over TCP."""

from collections.abc import Iterator

import pytest

from hyperhive_core.broker.postgres import open_pg_store
from hyperhive_core.errors import StorageError
from tests.postgres import PgServer, postgres_bin, running_postgres


@pytest.fixture(scope="module")
def tls_server() -> Iterator[PgServer]:
    """A server of its own (one start for the module) with TLS on 127.0.0.1."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql; CI installs it)")
    with running_postgres(bindir, tls=True) as server:
        yield server


def tcp_url(server: PgServer, database: str, query: str) -> str:
    return f"postgresql://postgres@/{database}?host=127.0.0.1&port={server.port}&{query}"


async def test_the_store_connects_over_verified_tls(tls_server: PgServer) -> None:
    assert tls_server.tls is not None
    database = tls_server.new_database().split("/")[3].split("?")[0]
    url = tcp_url(tls_server, database, f"sslmode=verify-full&sslrootcert={tls_server.tls.ca}")
    async with open_pg_store(url, host="here", pool_size=1) as store, store.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT s.ssl, s.version, a.client_addr::text FROM pg_stat_ssl s "
                "JOIN pg_stat_activity a ON a.pid = s.pid WHERE s.pid = pg_backend_pid()"
            )
        ).fetchone()
    assert row is not None
    ssl, version, client = row
    assert ssl is True
    assert str(version).startswith("TLS")
    assert client == "127.0.0.1/32"


async def test_a_connection_without_tls_is_refused_by_that_server(tls_server: PgServer) -> None:
    database = tls_server.new_database().split("/")[3].split("?")[0]
    with pytest.raises(StorageError) as caught:
        async with open_pg_store(tcp_url(tls_server, database, "sslmode=disable"), host="here", pool_size=1):
            pass
    assert "cannot reach the hive's PostgreSQL database" in str(caught.value)
    assert "no pg_hba.conf entry" in str(caught.value)
    assert "no encryption" in str(caught.value)


async def test_a_server_certificate_from_another_ca_is_refused(tls_server: PgServer) -> None:
    assert tls_server.tls is not None
    database = tls_server.new_database().split("/")[3].split("?")[0]
    # The server's own certificate is no CA: verify-full has nothing to anchor the chain in.
    url = tcp_url(tls_server, database, f"sslmode=verify-full&sslrootcert={tls_server.tls.cert}")
    with pytest.raises(StorageError) as caught:
        async with open_pg_store(url, host="here", pool_size=1):
            pass
    assert "certificate verify failed" in str(caught.value)
