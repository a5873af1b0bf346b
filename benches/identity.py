"""Identity end to end (see identity.sh): API key vs bearer JWT on the small query; HTTPS vs HTTP
streaming of lineitem."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import report as report_file

ROOT = Path(__file__).resolve().parent.parent
SMALL_SQL = "SELECT n_name, n_regionkey FROM nation WHERE n_nationkey = 7"
BIG_SQL = "SELECT * FROM lineitem"
ARROW = "application/vnd.apache.arrow.stream"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary: str, workdir: Path, name: str, config: str, port: int, ca: Path | None = None):
        path = workdir / f"{name}.toml"
        path.write_text(config)
        self.log = open(workdir / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--config", str(path)],
            stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT,
            env={**os.environ, "SLUICE_LOG": "warn"},
        )
        line = self.proc.stdout.readline()
        self.url = line.split("url=")[1].split()[0]
        self.key = line.split("api_key=")[1].strip() if "api_key=" in line else None
        self.ca = ca
        self.connect()

    def connect(self) -> None:
        u = urllib.parse.urlparse(self.url)
        if u.scheme == "https":
            ctx = ssl.create_default_context(cafile=str(self.ca))
            self.conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx)
        else:
            self.conn = http.client.HTTPConnection(u.hostname, u.port)

    def request(self, method: str, path: str, body: dict | None, bearer: str | None, accept: str = "application/json") -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "Accept": accept}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def latencies(server: Server, bearer: str, n: int) -> list[float]:
    body = {"sql": SMALL_SQL}
    server.conn.close()
    server.connect()
    server.request("POST", "/v1/query", body, bearer, ARROW)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = server.request("POST", "/v1/query", body, bearer, ARROW)
        out.append((time.perf_counter() - t) * 1000.0)
        if status != 200:
            raise RuntimeError(f"status {status}")
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def stream(server: Server) -> tuple[float, float, int]:
    """curl to /dev/null: seconds to the first byte, seconds in all, bytes."""
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{time_starttransfer} %{time_total} %{size_download} %{http_code}",
            "-H", f"Accept: {ARROW}", "-H", "Content-Type: text/plain", "--data", BIG_SQL, f"{server.url}/v1/query"]
    if server.ca:
        args[1:1] = ["--cacert", str(server.ca)]
    first, total, size, code = subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()
    if code != "200":
        raise RuntimeError(f"status {code}")
    return float(first), float(total), int(size)


def make_certs(d: Path) -> None:
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    script = f"""
      openssl req -x509 {ec} -keyout ca.key -out ca.crt -subj /CN=bench-ca -days 2
      openssl req {ec} -keyout server.key -out server.csr -subj /CN=localhost
      printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > server.ext
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext
    """
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=d, check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--provider", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--streams", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    data = Path(args.data).resolve()
    common = '[server]\ndefault_catalog = "local"\ndefault_schema = "public"\n'
    # lineitem at SF 1 is 6 million rows: above the default max_rows.
    limits = '[limits]\nmax_rows = 100000000\nquery_timeout_ms = 600000\n'
    source = f'[[sources]]\nname = "local"\nkind = "parquet"\nlocation = "{data}"\n'
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        idp = subprocess.Popen(["node", args.provider, "--keys", str(work / "keys.json")],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = ""
        while not line.startswith("oidc ready"):
            line = idp.stdout.readline()
        issuer = line.split()[2]
        port = free_port()
        resource = f"http://127.0.0.1:{port}"
        auth = (f'[auth]\nresource = "{resource}"\nscopes = ["sql.read"]\n[auth.oidc]\n'
                f'[[auth.oidc.issuers]]\nissuer = "{issuer}"\n'
                '[[auth.oidc.rules]]\nclaim = "roles"\nvalue = "Sluice.Analyst"\n'
                'grants = [{ source = "local", schema = "public", table = "*" }]\n'
                '[limits.reader]\nper_second = 1000000000\n'
                # Every request runs the query: the result cache would answer it without one.
                '[cache]\ncapacity_bytes = 0\n')
        ident = Server(args.sluice, work, "ident", common + auth + source, port)
        status, body = ident.request("POST", "/v1/keys", {
            "name": "bench", "grants": [{"source": "local", "schema": "public", "table": "*"}],
        }, ident.key)
        assert status == 201, body
        key = json.loads(body)["key"]
        req = urllib.request.Request(
            f"{issuer}/token", method="POST",
            data=urllib.parse.urlencode({"grant_type": "client_credentials", "resource": resource, "scope": "sql.read"}).encode(),
            headers={"Authorization": "Basic " + __import__("base64").b64encode(b"analyst:analyst-secret").decode()})
        token = json.loads(urllib.request.urlopen(req).read())["access_token"]
        latencies(ident, key, 200)
        latencies(ident, token, 200)
        small = {"API key": [], "JWT": []}
        for _ in range(args.rounds):
            for name, bearer in (("API key", key), ("JWT", token)):
                small[name].append(latencies(ident, bearer, args.requests))
        ident.stop()
        idp.terminate()

        make_certs(work)
        tls = (f'[server.tls]\ncert_path = "{work / "server.crt"}"\nkey_path = "{work / "server.key"}"\n')
        plain = Server(args.sluice, work, "plain", common + '[auth]\nmode = "none"\n' + limits + source, free_port())
        https = Server(args.sluice, work, "https", common + tls + '[auth]\nmode = "none"\n' + limits + source, free_port(), work / "ca.crt")
        stream(plain), stream(https)
        streams = {"HTTP": [], "HTTPS": []}
        for _ in range(args.streams):
            for name, server in (("HTTP", plain), ("HTTPS", https)):
                streams[name].append(stream(server))
        plain.stop()
        https.stop()

    now = report_file.now()
    lines = [
        f"## Identity: API key vs JWT, HTTPS vs HTTP: {now} · commit {report_file.revision()} · `benches/identity.sh --rounds {args.rounds} --requests {args.requests} --streams {args.streams}`\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores. One release server with `[auth.oidc]` trusting npm oidc-provider on loopback. "
        f"`{SMALL_SQL}` as Arrow IPC, {args.requests} sequential requests on one keep-alive connection per round (Python http.client), "
        f"rounds alternating key/JWT, {args.rounds} rounds, the result cache off (each request runs the query); both callers are readers granted `local.public.*` (the key from `/v1/keys`, "
        "the JWT an RS256 access token from the client-credentials grant, matched by a rule). Percentiles over all rounds' requests.\n",
        "| caller | p50 ms | p99 ms | rounds' p50 (ms) |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, runs in small.items():
        every = [v for r in runs for v in r]
        lines.append(f"| {name} | {pct(every, 0.5):.3f} | {pct(every, 0.99):.3f} | {', '.join(f'{pct(r, 0.5):.3f}' for r in runs)} |")
    diff_us = (pct([v for r in small['JWT'] for v in r], 0.5) - pct([v for r in small['API key'] for v in r], 0.5)) * 1000
    lines.append(f"\nJWT minus key at p50: **{diff_us:.0f} µs**.\n")
    lines += [
        f"`{BIG_SQL}` (TPC-H SF 1) as Arrow IPC with curl to /dev/null, fresh connection each, {args.streams} runs alternating, `auth.mode = \"none\"`; "
        "HTTPS: rustls (ring), ECDSA P-256 certificate, TLS 1.3, HTTP/1.1.\n",
        "| listener | first byte ms (median) | total s (median) | MB | MB/s (median) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, runs in streams.items():
        first = statistics.median(r[0] for r in runs) * 1000
        total = statistics.median(r[1] for r in runs)
        size = runs[0][2] / 1e6
        rate = statistics.median(r[2] / 1e6 / r[1] for r in runs)
        lines.append(f"| {name} | {first:.1f} | {total:.2f} | {size:.0f} | {rate:.0f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.no_write:
        report_file.prepend(report)


if __name__ == "__main__":
    main()
