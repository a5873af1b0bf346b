# The official MCP Python SDK (`mcp`, scripts/requirements-test.txt) against Sluice's /mcp.
# argv: base URL, admin key, reader key (granted local.public.nation only), mode ("auto" or
# "legacy"). Asserts what a model relies on and prints a JSON summary for src/tests/mcp.rs.
import asyncio
import json
import sys
import time
import urllib.request

import httpx2 as httpx
import pyarrow as pa
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

url, admin, reader, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]


def client(key):
    http = httpx.AsyncClient(headers={"Authorization": "Bearer " + key}, timeout=30)
    return Client(streamable_http_client(url + "/mcp", http_client=http), mode=mode)


def structured(result):
    assert not result.is_error, result.content
    text = json.loads(result.content[0].text)
    # The same JSON for clients that read only the text and those that read only the structure.
    assert text == result.structured_content, (text, result.structured_content)
    return result.structured_content


async def main():
    out = {}
    started = time.monotonic()
    async with client(admin) as c:
        out["connect_s"] = time.monotonic() - started
        session = c.session
        out["era"] = "modern" if getattr(session, "discover_result", None) else "legacy"
        out["protocol"] = (
            session.discover_result.supported_versions[-1]
            if out["era"] == "modern"
            else session.initialize_result.protocol_version
        )

        tools = {t.name: t for t in (await c.list_tools()).tools}
        out["tools"] = sorted(tools)
        for t in tools.values():
            assert t.annotations.read_only_hint is True, t.name
            assert t.output_schema is not None, t.name

        # Typed, exact values.
        r = structured(await c.call_tool("query", {
            "sql": "SELECT n_nationkey, n_name, CAST(9007199254740993 AS BIGINT) AS big, "
                   "CAST(1.5 AS DOUBLE) AS d FROM local.public.nation ORDER BY n_nationkey LIMIT 3"}))
        assert [c["type"] for c in r["columns"]] == ["Int64", "Utf8", "Int64", "Float64"], r["columns"]
        assert r["rows"][0] == [0, "ALGERIA", "9007199254740993", 1.5], r["rows"][0]
        assert r["row_count"] == 3 and r["truncated"] is False and r["sources"] == ["local"], r
        assert "full_result" not in r

        # Row cap: exactly n rows is not truncated; n - 1 is.
        r = structured(await c.call_tool("query", {"sql": "SELECT * FROM local.public.nation", "max_rows": 25}))
        assert r["row_count"] == 25 and r["truncated"] is False, (r["row_count"], r["truncated"])
        r = structured(await c.call_tool("query", {"sql": "SELECT * FROM local.public.nation", "max_rows": 24}))
        assert r["row_count"] == 24 and r["truncated"] is True, (r["row_count"], r["truncated"])
        out["row_cap"] = [r["row_count"], r["truncated"]]

        # Size cap: 500 lineitem rows do not fit in 64 KiB.
        res = await c.call_tool("query", {"sql": "SELECT * FROM local.public.lineitem"})
        r = structured(res)
        size = len(res.content[0].text.encode())
        assert r["truncated"] is True and 0 < r["row_count"] < 500, r["row_count"]
        assert size <= 64 * 1024, size
        out["size_cap"] = {"rows": r["row_count"], "bytes": size}
        links = [b for b in res.content if b.type == "resource_link"]
        assert len(links) == 1 and str(links[0].uri) == r["full_result"]["url"], res.content

        # The link streams every row.
        req = urllib.request.Request(r["full_result"]["url"], headers={
            "Authorization": "Bearer " + admin, "Accept": "application/vnd.apache.arrow.stream"})
        with urllib.request.urlopen(req) as resp:
            table = pa.ipc.open_stream(resp).read_all()
        out["full_rows"] = table.num_rows

        # Failures a model can fix are tool results.
        bad = await c.call_tool("query", {"sql": "SELEC 1"})
        assert bad.is_error, bad
        out["bad_sql"] = bad.content[0].text
        missing = await c.call_tool("describe_table", {"table": "local.public.nope"})
        assert missing.is_error and "table_not_found" in missing.content[0].text, missing.content

        d = structured(await c.call_tool("describe_table", {"table": "local.public.region"}))
        assert [c["name"] for c in d["columns"]] == ["r_regionkey", "r_name", "r_comment"], d
        page = structured(await c.call_tool("list_tables", {"limit": 3}))
        assert len(page["tables"]) == 3 and page["next_cursor"], page
        rest = structured(await c.call_tool("list_tables", {"cursor": page["next_cursor"]}))
        names = [t["name"] for t in page["tables"] + rest["tables"]]
        assert names == sorted(names) and len(names) == 8 and rest["next_cursor"] is None, names
        glob = structured(await c.call_tool("list_tables", {"pattern": "*.part*"}))
        assert [t["name"] for t in glob["tables"]] == ["local.public.part", "local.public.partsupp"], glob
        src = structured(await c.call_tool("list_sources", {}))
        assert src["sources"][0]["name"] == "local", src
        ex = structured(await c.call_tool("explain", {"sql": "SELECT count(*) FROM local.public.orders"}))
        assert ex["sources"] == ["local"] and ex["logical_plan"], ex

        res_list = (await c.list_resources()).resources
        uris = sorted(str(r.uri) for r in res_list)
        assert "sluice://local/public/nation" in uris and len(uris) == 8, uris
        templates = (await c.list_resource_templates()).resource_templates
        assert templates[0].uri_template == "sluice://{source}/{schema}/{table}", templates
        read = await c.read_resource("sluice://local/public/nation")
        body = json.loads(read.contents[0].text)
        assert body["name"] == "local.public.nation" and len(body["columns"]) == 4, body

        prompts = (await c.list_prompts()).prompts
        assert [p.name for p in prompts] == ["sql_assistant"], prompts
        p = await c.get_prompt("sql_assistant", {"question": "How many nations?"})
        text = p.messages[0].content.text
        assert "local.public.nation" in text and "How many nations?" in text, text

    # A reader key sees only its grant, through every door.
    async with client(reader) as c:
        page = structured(await c.call_tool("list_tables", {}))
        assert [t["name"] for t in page["tables"]] == ["local.public.nation"], page
        denied = await c.call_tool("query", {"sql": "SELECT count(*) FROM local.public.lineitem"})
        assert denied.is_error, denied
        out["reader_denied"] = denied.structured_content["error"]["code"]
        ok = structured(await c.call_tool("query", {"sql": "SELECT count(*) AS n FROM local.public.nation"}))
        assert ok["rows"] == [[25]], ok
        uris = [str(r.uri) for r in (await c.list_resources()).resources]
        assert uris == ["sluice://local/public/nation"], uris
        try:
            await c.read_resource("sluice://local/public/lineitem")
            raise AssertionError("a reader read a table outside its grant")
        except Exception as e:  # the SDK raises the JSON-RPC error
            out["reader_resource"] = type(e).__name__
    print(json.dumps(out))


asyncio.run(main())
