"""Example databases: where Hypothesis keeps failing orderings between runs.

    none                  no database (every run starts from its seed)
    PATH                  a folder (default .hypothesis/fuzzinit)
    redis://HOST:PORT[/N] Hypothesis's Redis database, shared by machines
"""

from __future__ import annotations

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from fuzzinit.errors import FuzzinitError

DEFAULT = ".hypothesis/fuzzinit"


def open_database(spec: str) -> ExampleDatabase | None:
    if spec == "none":
        return None
    if spec.startswith("redis://"):
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError as exc:
            raise FuzzinitError(
                f"--db {spec}: the redis package is not installed; fix: pip"
                " install 'fuzzinit[redis]'") from exc
        try:
            client = redis.Redis.from_url(spec)
            client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise FuzzinitError(f"--db {spec}: cannot reach Redis: {exc};"
                                " fix: start redis-server or check HOST:PORT"
                                ) from exc
        return RedisExampleDatabase(client)
    if "://" in spec:
        raise FuzzinitError(f"--db {spec}: unknown database; expected none,"
                            " a folder, or redis://HOST:PORT")
    return DirectoryBasedExampleDatabase(spec)
