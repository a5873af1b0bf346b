"""Schemathesis hooks for Sluice's API: how to send bare SQL (`application/sql`) and read the
binary result formats back, so every documented media type is exercised and checked."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import schemathesis


@schemathesis.serializer("application/sql")
def sql_text(ctx, value):
    """Bare SQL text, as curl and the CLI send it."""
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": str(value).encode("utf-8")}


@schemathesis.deserializer("application/vnd.apache.arrow.stream")
def arrow_stream(ctx, response):
    # A malformed stream raises here and is reported; the schema says "binary".
    pa.ipc.open_stream(io.BytesIO(response.content)).read_all()
    return response.content.decode("latin-1")


@schemathesis.deserializer("application/vnd.apache.parquet")
def parquet_file(ctx, response):
    pq.read_table(io.BytesIO(response.content))
    return response.content.decode("latin-1")


@schemathesis.check
def timeout_is_query_timeout(ctx, response, case):
    """A 5xx is never expected but for 504, and a 504 must be the documented query_timeout."""
    if response.status_code >= 500:
        code = None
        try:
            code = response.json()["error"]["code"]
        except Exception:  # noqa: BLE001 - any body that is not the error JSON fails below
            pass
        if response.status_code != 504 or code != "query_timeout":
            raise AssertionError(f"{response.status_code} {code}: a fault, not a documented answer")
