"""A release Sluice over TPC-H Parquet for the hand-run benchmarks: its own config in a
temporary folder (result cache off, generous limits, bare names resolving in `tpch.public`),
the URL and admin key from its ready line, and one keep-alive connection to it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Server:
    def __init__(self, binary: str, workdir: Path, data: Path, extra: str = "", log: str = "warn", name: str = "sluice"):
        path = workdir / f"{name}.toml"
        path.write_text(
            '[server]\ndefault_catalog = "tpch"\ndefault_schema = "public"\n'
            "[cache]\ncapacity_bytes = 0\n"
            "[limits]\nmax_rows = 100000000\nquery_timeout_ms = 600000\n"
            f'[[sources]]\nname = "tpch"\nkind = "parquet"\nlocation = "{data}"\n' + extra
        )
        self.log = open(workdir / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--config", str(path)],
            stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT,
            env={**os.environ, "SLUICE_LOG": log},
        )
        line = self.proc.stdout.readline()
        self.url = line.split("url=")[1].split()[0]
        self.key = line.split("api_key=")[1].split()[0]
        host, port = self.url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)

    def request(self, method: str, path: str, body: dict, key: str, accept: str = "application/json") -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "Accept": accept, "Authorization": f"Bearer {key}"}
        self.conn.request(method, path, body=json.dumps(body), headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
