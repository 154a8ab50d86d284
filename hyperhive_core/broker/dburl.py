"""The `--database` setting: a PostgreSQL URL, checked before anything connects, and shown without secrets.

A password written into the URL would show in `ps`, in the unit file and in the shell's history,
so it is refused: libpq reads it from a password file instead (`passfile=PATH` in the URL's query,
or the PGPASSFILE environment variable, or ~/.pgpass). TLS is libpq's too: `sslmode=verify-full`
(with `sslrootcert=PATH`) in the query. No module here imports psycopg.
"""

from urllib.parse import parse_qs, urlsplit

SCHEMES = ("postgresql", "postgres")
# Query parameters that carry a secret (libpq's names).
SECRET_PARAMS = frozenset({"password", "sslpassword"})


def check_database_url(url: str) -> str:
    """`url` if it names a PostgreSQL database and holds no secret.

    Raises:
        ValueError: it does not, with what to write instead.
    """
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError as exc:
        raise ValueError(f"the database URL cannot be read ({exc}); write postgresql://USER@HOST/DBNAME") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"the database URL must start with postgresql:// (got {parts.scheme or 'no scheme'}:); "
            "without --database the hive keeps its SQLite file in the state dir"
        )
    if has_password or SECRET_PARAMS & set(parse_qs(parts.query)):
        raise ValueError(
            "the database URL holds a password, which would show in `ps` and in logs; put it in a password "
            "file instead (one line HOST:PORT:DBNAME:USER:PASSWORD, mode 0600) and name it with passfile=PATH "
            "in the URL's query or the PGPASSFILE environment variable"
        )
    return url


def shown(url: str) -> str:
    """The URL as logs and errors may show it: user, host and database, never the query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
