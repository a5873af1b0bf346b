"""TPC-H answers from DuckDB over testdata/tpch, for the federation tests to check Sluice's.

Usage: python duckdb_tpch.py <parquet dir> <queries dir>
Prints one JSON object: {"q01": [[cell, ...], ...], ...}; numbers as numbers, everything
else as text.
"""
import decimal
import json
import pathlib
import sys

import duckdb

data, queries = map(pathlib.Path, sys.argv[1:3])
con = duckdb.connect()
for f in sorted(data.glob("*.parquet")):
    con.execute(f"CREATE VIEW {f.stem} AS SELECT * FROM read_parquet('{f}')")


def cell(v):
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, decimal.Decimal):
        return float(v)
    return str(v)


out = {}
for q in sorted(queries.glob("q*.sql")):
    rows = con.execute(q.read_text()).fetchall()
    out[q.stem] = [[cell(v) for v in r] for r in rows]
print(json.dumps(out))
