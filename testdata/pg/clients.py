"""The PostgreSQL door's differential harness, Python side: one client library runs the same
steps against a target (the test PostgreSQL cluster, or Sluice fronting it) and prints what it
saw as JSON, so the test can compare the two. Values are normalised to text the way each
library returns them (its own types: Decimal, datetime, bytes...), so a type the door sends
wrongly shows up as a different value or type name.

    python clients.py <psycopg|psycopg-binary|asyncpg|pg8000|sqlalchemy> <json target>

The target is {"host", "port", "user", "password", "database", "search_path", "sslmode"}.
"""

import asyncio
import datetime
import decimal
import json
import sys

STEPS = [
    ("rows", "SELECT i4, i8, f8, n, t, b, d, ts, tz, by FROM items ORDER BY i4", []),
    ("param", "SELECT t, n FROM items WHERE i4 = %s ORDER BY i4", [2]),
    ("param_text", "SELECT i4 FROM items WHERE t = %s ORDER BY i4", ["two"]),
    ("count", "SELECT count(*), max(d) FROM items", []),
    ("expr", "SELECT 1 + 1, 'a' || 'b', CAST(2.5 AS double precision)", []),
    ("missing_table", "SELECT * FROM no_such_table", []),
    ("syntax", "SELEC 1", []),
    ("write", "INSERT INTO items (i4) VALUES (99)", []),
    ("empty", "SELECT i4 FROM items WHERE i4 < 0", []),
    ("nulls", "SELECT i4, t FROM items WHERE t IS NULL ORDER BY i4", []),
]


def norm(v):
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "bytes:" + bytes(v).hex()
    if isinstance(v, decimal.Decimal):
        return "decimal:" + str(v)
    if isinstance(v, bool):
        return "bool:" + str(v)
    if isinstance(v, int):
        return "int:" + str(v)
    if isinstance(v, float):
        return "float:" + repr(v)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc)
        return "datetime:" + v.isoformat()
    if isinstance(v, datetime.date):
        return "date:" + v.isoformat()
    return type(v).__name__ + ":" + str(v)


def sqlstate(e):
    for attr in ("sqlstate", "pgcode"):
        s = getattr(e, attr, None)
        if s:
            return s
    args = getattr(e, "args", ())
    if args and isinstance(args[0], dict):
        return args[0].get("C")
    orig = getattr(e, "orig", None)
    if orig is not None and orig is not e:
        return sqlstate(orig)
    return "unknown:" + type(e).__name__ + ":" + str(e)[:200]


def run_psycopg(t, binary):
    import psycopg

    conninfo = psycopg.conninfo.make_conninfo(
        host=t["host"], port=t["port"], user=t["user"], password=t["password"],
        dbname=t["database"], sslmode=t.get("sslmode", "disable"),
        options="-c search_path=" + t["search_path"] + " -c default_transaction_read_only=on",
    )
    out = {}
    # psycopg's default: a transaction opened by the first statement (BEGIN), prepared after
    # prepare_threshold executions; binary cursors ask for binary results.
    with psycopg.connect(conninfo, prepare_threshold=1) as conn:
        for name, sql, params in STEPS:
            try:
                with conn.cursor(binary=binary) as cur:
                    for _ in range(2):  # the second run is a prepared statement
                        cur.execute(sql, params or None)
                    rows = cur.fetchall() if cur.description else []
                    cols = [d.name for d in cur.description] if cur.description else []
                    out[name] = {"columns": cols, "rows": [[norm(v) for v in r] for r in rows]}
            except psycopg.Error as e:
                out[name] = {"error": e.sqlstate}
                conn.rollback()
        # Server-side cursor (DECLARE ... FETCH) in chunks, as itersize does.
        with conn.cursor(name="big", binary=binary) as cur:
            cur.itersize = 2
            cur.execute("SELECT i4 FROM items ORDER BY i4")
            out["named_cursor"] = {"rows": [[norm(v) for v in r] for r in cur]}
        conn.rollback()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'Europe/Berlin'")
            cur.execute("SELECT current_setting('TimeZone'), tz FROM items ORDER BY i4")
            out["timezone"] = {"rows": [[norm(v) for v in r] for r in cur.fetchall()]}
            # COPY (query) TO STDOUT.
            with cur.copy("COPY (SELECT i4, t FROM items ORDER BY i4) TO STDOUT") as copy:
                data = b"".join(bytes(b) for b in copy)
            out["copy"] = {"rows": [[data.decode()]]}
    print(json.dumps(out, sort_keys=True))


def run_asyncpg(t):
    import asyncpg

    async def main():
        out = {}
        conn = await asyncpg.connect(
            host=t["host"], port=t["port"], user=t["user"], password=t["password"],
            database=t["database"], ssl=False if t.get("sslmode", "disable") == "disable" else "require",
            server_settings={"search_path": t["search_path"], "default_transaction_read_only": "on"},
        )
        for name, sql, params in STEPS:
            q = sql
            for i in range(len(params)):
                q = q.replace("%s", f"${i + 1}", 1)
            try:
                # asyncpg prepares everything and reads every column in binary.
                stmt = await conn.prepare(q)
                rows = await stmt.fetch(*params)
                cols = [a.name for a in stmt.get_attributes()]
                out[name] = {"columns": cols, "rows": [[norm(v) for v in r.values()] for r in rows]}
            except asyncpg.PostgresError as e:
                out[name] = {"error": e.sqlstate}
        # A cursor in a transaction, fetched in pieces (portal suspension).
        async with conn.transaction(readonly=True):
            cur = await conn.cursor("SELECT i4 FROM items ORDER BY i4")
            got = []
            while True:
                chunk = await cur.fetch(2)
                if not chunk:
                    break
                got.extend(chunk)
            out["named_cursor"] = {"rows": [[norm(r[0])] for r in got]}
        # What a pool runs when a connection is handed back.
        await conn.reset()
        out["after_reset"] = {"rows": [[norm(await conn.fetchval("SELECT 1"))]]}
        await conn.close()
        return out

    print(json.dumps(asyncio.run(main()), sort_keys=True))


def run_pg8000(t):
    import pg8000.native

    out = {}
    conn = pg8000.native.Connection(
        t["user"], host=t["host"], port=t["port"], password=t["password"], database=t["database"],
        startup_params={"search_path": t["search_path"], "default_transaction_read_only": "on"},
    )
    for name, sql, params in STEPS:
        q = sql
        for i in range(len(params)):
            q = q.replace("%s", f":p{i}", 1)
        try:
            rows = conn.run(q, **{f"p{i}": p for i, p in enumerate(params)})
            cols = [c["name"] for c in conn.columns] if conn.columns else []
            out[name] = {"columns": cols, "rows": [[norm(v) for v in r] for r in (rows or [])]}
        except pg8000.native.DatabaseError as e:
            out[name] = {"error": sqlstate(e)}
    conn.close()
    print(json.dumps(out, sort_keys=True))


def run_sqlalchemy(t):
    import pandas as pd
    import sqlalchemy as sa

    url = sa.engine.URL.create(
        "postgresql+psycopg", username=t["user"], password=t["password"], host=t["host"],
        port=t["port"], database=t["database"],
        query={"options": "-c search_path=" + t["search_path"], "sslmode": t.get("sslmode", "disable")},
    )
    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as conn:
        df = pd.read_sql(sa.text("SELECT i4, t, n FROM items ORDER BY i4"), conn)
        out["read_sql"] = {"columns": list(df.columns), "rows": [[norm(v) if not pd.isna(v) else None for v in r] for r in df.itertuples(index=False)]}
        inspector = sa.inspect(conn)
        schema = t["schema_name"]
        out["tables"] = {"rows": [[n] for n in sorted(inspector.get_table_names(schema=schema))]}
        cols = inspector.get_columns("items", schema=schema)
        out["columns"] = {"rows": [[c["name"], str(c["type"]), c["nullable"]] for c in cols]}
        out["version"] = {"rows": [[str(conn.dialect.server_version_info[0])]]}
    print(json.dumps(out, sort_keys=True))


def run_odbc(t):
    import pyodbc

    # psqlODBC in declare/fetch mode (Tableau's): results read through a cursor, 2 rows a FETCH.
    conn = pyodbc.connect(
        f"Driver={t['driver']};"
        f"Server={t['host']};Port={t['port']};Database={t['database']};"
        f"Uid={t['user']};Pwd={t['password']};SSLmode={t.get('sslmode', 'disable')};"
        f"UseDeclareFetch=1;Fetch=2;ConnSettings=SET search_path TO {t['search_path']}%3B"
        "SET default_transaction_read_only TO on%3B;",
        autocommit=False,
    )
    out = {}
    cur = conn.cursor()
    for name, sql, params in STEPS:
        q = sql.replace("%s", "?")
        try:
            cur.execute(q, *params)
            rows = cur.fetchall() if cur.description else []
            cols = [d[0] for d in cur.description] if cur.description else []
            out[name] = {"columns": cols, "rows": [[norm(v) for v in r] for r in rows]}
        except pyodbc.Error as e:
            out[name] = {"error": e.args[0] if e.args else "unknown"}
            conn.rollback()
    tables = [r.table_name for r in cur.tables(schema=t["schema_name"], tableType="TABLE")]
    out["tables"] = {"rows": [[n] for n in sorted(tables)]}
    conn.close()
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    client, target = sys.argv[1], json.loads(sys.argv[2])
    if client == "psycopg":
        run_psycopg(target, False)
    elif client == "psycopg-binary":
        run_psycopg(target, True)
    elif client == "asyncpg":
        run_asyncpg(target)
    elif client == "pg8000":
        run_pg8000(target)
    elif client == "sqlalchemy":
        run_sqlalchemy(target)
    elif client == "odbc":
        run_odbc(target)
    else:
        raise SystemExit("unknown client " + client)
