#!/usr/bin/env python3
"""Offline check of Sluice's Kubernetes manifests and container image definition.

    python3 deploy/kubernetes/check.py [--dir DIR] [--dockerfile FILE] [--k8s-version X.Y]...

What it does, without a cluster, a registry or the network:

1. parses kustomization.yaml, every manifest it lists and the ConfigMaps its
   configMapGenerator makes (sluice.toml), and refuses YAML files it does not list;
2. validates every object against the Kubernetes JSON schemas (strict: unknown fields are
   errors) bundled in the PyPI package kubernetes-validate, for each --k8s-version (default:
   1.30 and the newest bundled); the schemas are files inside the package, read locally;
3. holds the manifests to sluice.toml as the server will read it: containerPorts are the
   listen ports, the Service's targetPorts are those containerPorts, probes are /ready and
   /health on the HTTP listener's port with the listener's scheme, terminationGracePeriodSeconds
   covers preStop sleep + server.drain_timeout_ms + 5 s, every `${VAR}` and `*_env` the config
   needs is in the container's environment (from Secrets that exist and hold the key), TLS files
   come from a mounted Secret, replicas share a metadata store and a Flight ticket secret, the
   memory pool and cache fit the memory limit; the PDB, HPA and Service select the Deployment's
   pods; the pods run as non-root with a read-only root, no privilege escalation and no
   capabilities, with a writable /tmp for spills;
4. reads the Dockerfile lightly: the final stage's USER is numeric and non-root (and the uid the
   pods run as), HEALTHCHECK is present, EXPOSE is the containerPorts, STOPSIGNAL starts a
   drain, and the image's own sluice.toml listens on all interfaces on exposed ports and needs
   no environment to start;
5. renders the kustomization with `kubectl kustomize` when kubectl is on PATH (offline too).

What it does not prove: that the image builds, that the manifests apply to a real cluster
(admission, quotas, CRDs, RBAC), or that Sluice starts with this config (run
`sluice check --config deploy/kubernetes/sluice.toml` for the config's own rules).

Exit status: 0 all checks passed, 1 a check failed, 2 it could not run (missing package or
file). Needs Python 3.11+ (tomllib), PyYAML and kubernetes-validate (`--skip-schema` runs
without the latter and says so).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import yaml
except ImportError:  # pragma: no cover - reported to the user
    print("check.py: PyYAML is not installed (pip install kubernetes-validate brings it)", file=sys.stderr)
    sys.exit(2)

HERE = Path(__file__).resolve().parent
DEFAULT_SCHEMA_FLOOR = "1.30"
MARGIN_S = 5
# Sluice's defaults (schemas/src/config.rs) for keys the checks read.
DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_DRAIN_MS = 30_000
DEFAULT_MEMORY_LIMIT = 2 * 1024**3
DEFAULT_CACHE_CAPACITY = 256 * 1024**2
DEFAULT_KEY_SYNC_MS = 1000
MEMORY_SHARE = 0.75


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passed: int = 0

    def ok(self, msg: str) -> None:
        self.passed += 1
        print(f"  ok    {msg}")

    def fail(self, msg: str) -> None:
        self.failures.append(msg)
        print(f"  FAIL  {msg}")

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        print(f"  warn  {msg}")

    def expect(self, cond: bool, ok: str, fail: str) -> bool:
        if cond:
            self.ok(ok)
        else:
            self.fail(fail)
        return cond


class Unusable(Exception):
    """The check cannot run at all (exit 2)."""


# --- loading -------------------------------------------------------------------------------


@dataclass
class Obj:
    origin: str
    body: dict

    @property
    def kind(self) -> str:
        return self.body.get("kind", "?")

    @property
    def name(self) -> str:
        return (self.body.get("metadata") or {}).get("name", "?")

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def load_objects(kdir: Path, rep: Report) -> list[Obj]:
    kfile = next((kdir / n for n in ("kustomization.yaml", "kustomization.yml", "Kustomization") if (kdir / n).is_file()), None)
    if kfile is None:
        raise Unusable(f"{kdir}: no kustomization.yaml")
    try:
        kust = yaml.safe_load(kfile.read_text()) or {}
    except yaml.YAMLError as e:
        raise Unusable(f"{kfile}: not YAML: {e}") from e
    objects: list[Obj] = []
    listed: set[Path] = {kfile.resolve()}
    for res in kust.get("resources") or []:
        path = (kdir / res).resolve()
        listed.add(path)
        if path.is_dir():
            rep.fail(f"{kfile.name}: resource {res} is a folder; check.py reads files only")
            continue
        if not path.is_file():
            rep.fail(f"{kfile.name}: resource {res} does not exist")
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as e:
            rep.fail(f"{res}: not YAML: {e}")
            continue
        for i, doc in enumerate(docs):
            if doc is None:
                continue
            origin = f"{res}#{i}"
            if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
                rep.fail(f"{origin}: not a Kubernetes object (apiVersion and kind required)")
                continue
            if not (doc.get("metadata") or {}).get("name"):
                rep.fail(f"{origin}: {doc['kind']} without metadata.name")
                continue
            objects.append(Obj(origin, doc))
    for gen in kust.get("configMapGenerator") or []:
        name = gen.get("name")
        data: dict[str, str] = {}
        for entry in gen.get("files") or []:
            key, _, rel = entry.rpartition("=") if "=" in entry else ("", "", entry)
            path = (kdir / rel).resolve()
            listed.add(path)
            if not path.is_file():
                rep.fail(f"{kfile.name}: configMapGenerator {name}: file {rel} does not exist")
                continue
            data[key or Path(rel).name] = path.read_text()
        for lit in gen.get("literals") or []:
            k, _, v = lit.partition("=")
            data[k] = v
        objects.append(Obj(f"{kfile.name} configMapGenerator", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}))
    for p in sorted(kdir.iterdir()):
        if p.suffix in (".yaml", ".yml") and p.resolve() not in listed:
            rep.fail(f"{p.name} is not listed in {kfile.name}: `kubectl apply -k` would skip it")
    namespaced = [o for o in objects if "namespace" in (o.body.get("metadata") or {})]
    rep.expect(not namespaced, "namespace-agnostic: no object sets metadata.namespace",
               "objects set metadata.namespace (the manifests must take `-n`): "
               + ", ".join(map(str, namespaced)))
    names = [(o.kind, o.name) for o in objects]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        rep.fail("duplicate objects: " + ", ".join(f"{k}/{n}" for k, n in sorted(dupes)))
    return objects


# --- schemas -------------------------------------------------------------------------------


def validate_schemas(objects: list[Obj], versions: list[str] | None, rep: Report) -> None:
    try:
        import kubernetes_validate
        from kubernetes_validate import utils as kv
    except ImportError as e:
        raise Unusable("kubernetes-validate is not installed (pip install kubernetes-validate); "
                       "--skip-schema checks without it") from e
    bundled = kv.all_versions()
    newest = kv.major_minor(bundled[-1])
    wanted = versions or [DEFAULT_SCHEMA_FLOOR, newest]
    wanted = list(dict.fromkeys(kv.major_minor(v.lstrip("v")) for v in wanted))
    have = {kv.major_minor(v) for v in bundled}
    for v in wanted:
        if v not in have:
            raise Unusable(f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for "
                           f"Kubernetes {v} (it has {', '.join(sorted(have, key=_ver))})")
    for obj in objects:
        bad = False
        for v in wanted:
            try:
                kv.validate(obj.body, v, strict=True)
            except kv.ValidationError as e:
                where = ".".join(str(p) for p in e.path) or "(top)"
                rep.fail(f"schema {v}: {obj} ({obj.origin}) at {where}: {e.message}")
                bad = True
            except kv.SchemaNotFoundError as e:
                rep.fail(f"schema {v}: {obj} ({obj.origin}): {e.message}")
                bad = True
        if not bad:
            rep.ok(f"schema: {obj} valid against Kubernetes {', '.join(wanted)} (strict)")


def _ver(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


# --- helpers -------------------------------------------------------------------------------


def parse_addr(text: str) -> tuple[str, int]:
    host, _, port = str(text).rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def quantity_bytes(q: Any) -> float | None:
    if q is None:
        return None
    m = re.fullmatch(r"([0-9.]+)([EPTGMK]i?|[mk]|e[0-9]+)?", str(q))
    if not m:
        return None
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
             "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "m": 1e-3}
    num, unit = float(m.group(1)), m.group(2) or ""
    if unit.startswith("e"):
        return num * 10 ** int(unit[1:])
    return num * units.get(unit, 1)


def selector_matches(selector: dict | None, labels: dict) -> bool:
    if not selector:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def env_refs(text: str) -> list[tuple[str, bool]]:
    """`${VAR}` / `${VAR:-default}` references in a config string: (name, has_default)."""
    text = text.replace("$${", "")
    return [(m.group(1), m.group(2) is not None) for m in re.finditer(r"\$\{([A-Za-z0-9_]+)(:-[^}]*)?\}", text)]


def walk_strings(value: Any, path: str = ""):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from walk_strings(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_strings(v, f"{path}[{i}]")


def walk_env_keys(value: Any, path: str = ""):
    """Config keys ending in `_env` (they name environment variables): (path, variable)."""
    if isinstance(value, dict):
        for k, v in value.items():
            p = f"{path}.{k}" if path else k
            if k.endswith("_env") and isinstance(v, str):
                yield p, v
            else:
                yield from walk_env_keys(v, p)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_env_keys(v, f"{path}[{i}]")


def apply_override(cfg: dict, name: str, raw: str) -> None:
    """`SLUICE_A__B=v` as Sluice's loader applies it (schemas/src/loader.rs)."""
    path = [s.lower() for s in name[len("SLUICE_"):].split("__")]
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    table = cfg
    segs = iter(path[:-1])
    for seg in segs:
        nxt = table.setdefault(seg, {})
        if isinstance(nxt, list):
            sel = next(segs, None)
            found = None
            if sel is not None and sel.isdigit() and int(sel) < len(nxt):
                found = nxt[int(sel)]
            elif sel is not None:
                found = next((i for i in nxt if str(i.get("name", "")).lower() == sel), None)
            if not isinstance(found, dict):
                return
            nxt = found
        if not isinstance(nxt, dict):
            return
        table = nxt
    table[path[-1]] = value


def prestop_sleep(container: dict) -> tuple[float | None, str]:
    pre = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in pre:
        return float(pre["sleep"].get("seconds", 0)), "lifecycle.preStop.sleep"
    cmd = (pre.get("exec") or {}).get("command") or []
    if cmd:
        words = cmd
        if len(cmd) >= 3 and posixpath.basename(cmd[0]) in ("sh", "bash", "dash") and cmd[1] == "-c":
            words = shlex.split(cmd[2])
        for i, w in enumerate(words[:-1]):
            if posixpath.basename(w) == "sleep":
                try:
                    return float(words[i + 1].rstrip("s")), f"preStop exec {cmd}"
                except ValueError:
                    break
        return None, f"preStop exec {cmd} (no `sleep N` in it)"
    if pre:
        return None, "preStop without a sleep"
    return None, "no preStop hook"


# --- the Kubernetes checks -----------------------------------------------------------------


def check_kubernetes(objects: list[Obj], rep: Report) -> dict:
    """Consistency of the manifests with each other and with sluice.toml; returns facts the
    Dockerfile check compares with (container ports, uid)."""
    by_kind: dict[str, list[Obj]] = {}
    for o in objects:
        by_kind.setdefault(o.kind, []).append(o)
    facts: dict = {}

    deps = by_kind.get("Deployment", [])
    if len(deps) != 1:
        rep.fail(f"expected exactly one Deployment, found {len(deps)}")
        return facts
    dep = deps[0]
    spec = dep.body.get("spec") or {}
    tmpl = spec.get("template") or {}
    pod = tmpl.get("spec") or {}
    pod_labels = (tmpl.get("metadata") or {}).get("labels") or {}
    containers = pod.get("containers") or []
    c = next((x for x in containers if x.get("name") == "sluice"), containers[0] if containers else None)
    if c is None:
        rep.fail(f"{dep}: no containers")
        return facts

    rep.expect(selector_matches(spec.get("selector"), pod_labels),
               f"{dep}: spec.selector matches its pod labels {pod_labels}",
               f"{dep}: spec.selector {spec.get('selector')} does not select its pod labels {pod_labels}")

    # The config file the container runs with.
    args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    cfg_path = listen_arg = None
    for i, a in enumerate(args):
        if a in ("--config", "-c") and i + 1 < len(args):
            cfg_path = args[i + 1]
        elif a.startswith("--config="):
            cfg_path = a.split("=", 1)[1]
        elif a == "--listen" and i + 1 < len(args):
            listen_arg = args[i + 1]
        elif a.startswith("--listen="):
            listen_arg = a.split("=", 1)[1]
    if not cfg_path:
        rep.fail(f"{dep}: the container runs without --config (the embedded default listens on loopback only)")
        return facts
    mounts = c.get("volumeMounts") or []
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    cms = {o.name: o for o in by_kind.get("ConfigMap", [])}
    secrets = {o.name: o for o in by_kind.get("Secret", [])}

    def source_of(path: str) -> tuple[dict | None, str | None, dict | None]:
        """The mount a file path is under: (mount, key within the volume, volume)."""
        for m in sorted(mounts, key=lambda m: -len(m.get("mountPath", ""))):
            mp = m.get("mountPath", "").rstrip("/")
            if m.get("subPath") and path == mp:
                return m, m["subPath"], volumes.get(m.get("name"))
            if path.startswith(mp + "/"):
                rel = path[len(mp) + 1:]
                vol = volumes.get(m.get("name")) or {}
                src = vol.get("configMap") or vol.get("secret") or {}
                for item in src.get("items") or []:
                    if item.get("path") == rel:
                        rel = item.get("key")
                        break
                else:
                    if src.get("items"):
                        return m, None, vol
                return m, rel, vol
        return None, None, None

    mount, key, vol = source_of(cfg_path)
    cm_name = ((vol or {}).get("configMap") or {}).get("name")
    if not cm_name:
        rep.fail(f"{dep}: --config {cfg_path} is not in a mounted ConfigMap")
        return facts
    cm = cms.get(cm_name)
    if cm is None or key not in ((cm.body.get("data")) or {}):
        rep.fail(f"{dep}: --config {cfg_path} needs key {key!r} of ConfigMap {cm_name}, which the manifests do not have")
        return facts
    try:
        cfg = tomllib.loads(cm.body["data"][key])
    except tomllib.TOMLDecodeError as e:
        rep.fail(f"ConfigMap {cm_name}: {key} is not TOML: {e}")
        return facts
    rep.ok(f"{dep}: runs with {cfg_path} = ConfigMap {cm_name} key {key} ({cm.origin})")

    # The container's environment: literal values, Secret and ConfigMap references.
    env_literal: dict[str, str] = {}
    env_all: dict[str, bool] = {}  # name -> may be unset (optional reference)
    for e in c.get("env") or []:
        n = e.get("name")
        vf = e.get("valueFrom")
        if vf is None:
            env_literal[n] = str(e.get("value", ""))
            env_all[n] = False
            continue
        for kind, ref_key, store in (("secretKeyRef", "Secret", secrets), ("configMapKeyRef", "ConfigMap", cms)):
            ref = vf.get(kind)
            if ref is None:
                continue
            optional = bool(ref.get("optional"))
            env_all[n] = optional
            target = store.get(ref.get("name"))
            held = {}
            if target is not None:
                held = {**(target.body.get("data") or {}), **(target.body.get("stringData") or {})}
            if target is None and not optional:
                rep.fail(f"{dep}: env {n} reads {ref_key} {ref.get('name')}, which is not among the manifests")
            elif target is not None and ref.get("key") not in held and not optional:
                rep.fail(f"{dep}: env {n} reads key {ref.get('key')!r} of {ref_key} {ref.get('name')}, which it does not hold")
            else:
                rep.ok(f"{dep}: env {n} from {ref_key} {ref.get('name')} key {ref.get('key')}" + (" (optional)" if optional else ""))
        if n not in env_all:
            env_all[n] = False  # fieldRef / resourceFieldRef: always set
    for src in c.get("envFrom") or []:
        ref = src.get("secretRef") or src.get("configMapRef")
        store = secrets if "secretRef" in src else cms
        target = store.get((ref or {}).get("name"))
        if target is None:
            if not (ref or {}).get("optional"):
                rep.fail(f"{dep}: envFrom {ref} is not among the manifests")
            continue
        for k in {**(target.body.get("data") or {}), **(target.body.get("stringData") or {})}:
            env_all.setdefault(src.get("prefix", "") + k, bool(ref.get("optional")))

    # Environment overrides, as the loader applies them.
    for n, v in env_literal.items():
        if n.startswith("SLUICE_") and "__" in n:
            apply_override(cfg, n, v)
            rep.warn(f"{dep}: env {n} overrides sluice.toml (applied before these checks)")
    for n in env_all:
        if n.startswith("SLUICE_") and "__" in n and n not in env_literal:
            rep.warn(f"{dep}: env {n} overrides sluice.toml from a reference check.py cannot read")

    server = cfg.get("server") or {}
    listen = listen_arg or server.get("listen", DEFAULT_LISTEN)
    listeners: dict[str, tuple[str, int]] = {}
    try:
        listeners["http"] = parse_addr(listen)
        for section in ("flight", "pg"):
            if isinstance(cfg.get(section), dict):
                listeners[section] = parse_addr(cfg[section]["listen"])
    except (KeyError, ValueError) as e:
        rep.fail(f"sluice.toml: a listen address does not parse: {e}")
        return facts
    for name, (host, port) in listeners.items():
        rep.expect(is_unspecified(host),
                   f"sluice.toml: {name} listens on all interfaces ({host}:{port})",
                   f"sluice.toml: {name} listens on {host}:{port}; in a pod it must be 0.0.0.0 (or [::]) "
                   "to be reachable by the kubelet's probes and the Service")
    tls = isinstance(server.get("tls"), dict)
    pg = cfg.get("pg")
    if isinstance(pg, dict) and not is_loopback(listeners["pg"][0]):
        rep.expect(bool(pg.get("tls")) and tls,
                   "sluice.toml: [pg] off loopback has tls = true and [server.tls]",
                   "sluice.toml: [pg] off loopback needs tls = true and [server.tls] (Sluice refuses to start otherwise)")

    # Ports: containerPorts == listen ports == Service targetPorts.
    cports = c.get("ports") or []
    by_name = {p.get("name"): int(p["containerPort"]) for p in cports if p.get("name")}
    cport_set = {int(p["containerPort"]) for p in cports}
    listen_ports = {port for _, port in listeners.values()}
    facts["container_ports"] = cport_set
    rep.expect(cport_set == listen_ports,
               f"containerPorts {sorted(cport_set)} are the listen ports of sluice.toml",
               f"containerPorts {sorted(cport_set)} differ from sluice.toml's listen ports "
               f"{ {k: v[1] for k, v in listeners.items()} }")
    http_port = listeners["http"][1]

    def resolve(port: Any) -> int | None:
        if isinstance(port, int):
            return port
        if isinstance(port, str) and port.isdigit():
            return int(port)
        return by_name.get(port)

    # Probes.
    scheme = "HTTPS" if tls else "HTTP"
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health"), ("startupProbe", "/health")):
        p = c.get(probe)
        if not p:
            rep.fail(f"{dep}: no {probe}")
            continue
        get = p.get("httpGet")
        if not get:
            rep.fail(f"{dep}: {probe} is not an httpGet (it must GET {path})")
            continue
        got_port = resolve(get.get("port"))
        got_scheme = get.get("scheme", "HTTP")
        rep.expect(get.get("path") == path and got_port == http_port and got_scheme == scheme,
                   f"{dep}: {probe} GETs {path} on the HTTP listener ({scheme} port {http_port})",
                   f"{dep}: {probe} GETs {got_scheme} {get.get('path')} on port {get.get('port')} ({got_port}); "
                   f"expected {scheme} {path} on port {http_port}" + (" ([server.tls] is on)" if tls else ""))

    # Draining: preStop sleep + drain + margin within the grace period.
    drain_ms = int(server.get("drain_timeout_ms", DEFAULT_DRAIN_MS))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    sleep_s, how = prestop_sleep(c)
    if sleep_s is None:
        rep.fail(f"{dep}: {how}: SIGTERM would reach pods still in load balancers' endpoint lists "
                 "(add preStop exec [\"sleep\", \"10\"])")
    else:
        need = sleep_s + drain_ms / 1000 + MARGIN_S
        rep.expect(grace >= need,
                   f"{dep}: terminationGracePeriodSeconds {grace} >= preStop sleep {sleep_s:g} + drain {drain_ms / 1000:g} + {MARGIN_S} = {need:g}",
                   f"{dep}: terminationGracePeriodSeconds {grace} < preStop sleep {sleep_s:g} + server.drain_timeout_ms "
                   f"{drain_ms / 1000:g} s + {MARGIN_S} s = {need:g}: running queries would be killed mid-drain")

    # Every variable the config needs is set.
    for where, text in walk_strings(cfg):
        for var, has_default in env_refs(text):
            if has_default:
                continue
            if var not in env_all:
                rep.fail(f"sluice.toml: {where} needs ${{{var}}}, which the container's environment does not set")
            elif env_all[var]:
                rep.fail(f"sluice.toml: {where} needs ${{{var}}}, whose reference is optional (unset: Sluice does not start)")
            else:
                rep.ok(f"sluice.toml: ${{{var}}} ({where}) is set by the container's environment")
    for where, var in walk_env_keys(cfg):
        rep.expect(var in env_all and not env_all[var],
                   f"sluice.toml: {where} = {var!r} is set by the container's environment",
                   f"sluice.toml: {where} names {var!r}, which the container's environment does not always set")

    # TLS files come from a mounted Secret holding them.
    if tls:
        for k in ("cert_path", "key_path"):
            path = str(server["tls"].get(k, ""))
            m, key_, v = source_of(path)
            sname = ((v or {}).get("secret") or {}).get("secretName")
            s = secrets.get(sname)
            held = {**(s.body.get("data") or {}), **(s.body.get("stringData") or {})} if s else {}
            rep.expect(bool(sname) and key_ in held,
                       f"server.tls.{k} {path} is key {key_} of the mounted Secret {sname}",
                       f"server.tls.{k} {path} is not a key of a Secret in the manifests mounted there"
                       + (f" (mount {m.get('mountPath')}, Secret {sname})" if m else ""))

    # Replicas share state.
    hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", [])
            if (h.body.get("spec") or {}).get("scaleTargetRef", {}).get("name") == dep.name]
    hpa = hpas[0] if hpas else None
    min_replicas = (hpa.body["spec"].get("minReplicas", 1) if hpa else spec.get("replicas", 1))
    if hpa and "replicas" in spec:
        rep.warn(f"{dep}: sets spec.replicas while {hpa} scales it: every `kubectl apply` resets the count")
    rep.expect(min_replicas >= 2, f"at least {min_replicas} replicas",
               f"{min_replicas} replica(s): a drain or a node loss takes Sluice down")
    if min_replicas >= 2:
        meta = cfg.get("metadata") or {}
        rep.expect(bool(meta.get("postgres_url")),
                   "replicas share one metadata store (metadata.postgres_url)",
                   "several replicas without metadata.postgres_url: each pod would have its own keys and audit log")
        if isinstance(cfg.get("flight"), dict):
            rep.expect(bool(cfg["flight"].get("ticket_secret_env")),
                       "replicas sign Flight tickets with one secret (flight.ticket_secret_env)",
                       "several replicas without flight.ticket_secret_env: a ticket is refused by every pod but its issuer")
        sync = int((cfg.get("auth") or {}).get("key_sync_ms", DEFAULT_KEY_SYNC_MS))
        rep.expect(1 <= sync <= 5000, f"auth.key_sync_ms {sync}: revocations reach every replica within {sync} ms",
                   f"auth.key_sync_ms {sync} is outside 1..5000")

    # Memory: pool + cache within the limit.
    res = c.get("resources") or {}
    mem_limit = quantity_bytes((res.get("limits") or {}).get("memory"))
    limits = cfg.get("limits") or {}
    cache = cfg.get("cache") or {}
    used = int(limits.get("memory_limit_bytes", DEFAULT_MEMORY_LIMIT)) + int(cache.get("capacity_bytes", DEFAULT_CACHE_CAPACITY))
    if mem_limit is None:
        rep.fail(f"{dep}: no memory limit")
    else:
        rep.expect(used <= MEMORY_SHARE * mem_limit,
                   f"limits.memory_limit_bytes + cache.capacity_bytes = {used / 2**30:.2f} GiB <= {MEMORY_SHARE:.0%} of the {mem_limit / 2**30:.2f} GiB limit",
                   f"limits.memory_limit_bytes + cache.capacity_bytes = {used / 2**30:.2f} GiB > {MEMORY_SHARE:.0%} of the "
                   f"container's {mem_limit / 2**30:.2f} GiB memory limit: the pod would be OOM-killed before the pool refuses queries")

    # Security.
    psc = pod.get("securityContext") or {}
    csc = c.get("securityContext") or {}
    non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    facts["uid"] = uid
    facts["run_as_non_root"] = bool(non_root)
    rep.expect(non_root is True, "runAsNonRoot: true", "runAsNonRoot is not true")
    rep.expect(uid != 0, f"runAsUser {uid if uid is not None else '(the image USER)'} is not root", "runAsUser is 0 (root)")
    rep.expect(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false",
               "allowPrivilegeEscalation is not false")
    rep.expect(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem is not true")
    drops = ((csc.get("capabilities") or {}).get("drop")) or []
    rep.expect("ALL" in drops and not (csc.get("capabilities") or {}).get("add"),
               "capabilities: drop ALL, add none", f"capabilities drop {drops} (expected ALL, and nothing added)")
    rep.expect(not csc.get("privileged") and not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")),
               "not privileged, no host namespaces", "privileged or host namespaces in use")
    if csc.get("readOnlyRootFilesystem"):
        tmp = next((m for m in mounts if m.get("mountPath", "").rstrip("/") == "/tmp"), None)
        rep.expect(tmp is not None and not tmp.get("readOnly"),
                   "/tmp is a writable volume (spills of sorts and aggregations)",
                   "read-only root without a writable /tmp volume: queries that spill would fail")
        meta = cfg.get("metadata") or {}
        if meta.get("data_dir") and not meta.get("postgres_url"):
            d, _, _ = source_of(str(meta["data_dir"]).rstrip("/") + "/x")
            rep.expect(d is not None and not d.get("readOnly"), f"metadata.data_dir {meta['data_dir']} is a writable volume",
                       f"metadata.data_dir {meta['data_dir']} is on the read-only root")

    # Service, PDB, HPA.
    svcs = by_kind.get("Service", [])
    if not svcs:
        rep.fail("no Service")
    for svc in svcs:
        sspec = svc.body.get("spec") or {}
        sel = sspec.get("selector") or {}
        rep.expect(bool(sel) and all(pod_labels.get(k) == v for k, v in sel.items()),
                   f"{svc}: selector {sel} selects the Deployment's pods",
                   f"{svc}: selector {sel} does not select the Deployment's pods {pod_labels}")
        targets = {}
        for p in sspec.get("ports") or []:
            t = resolve(p.get("targetPort", p.get("port")))
            if t is None or t not in cport_set:
                rep.fail(f"{svc}: port {p.get('name')} targets {p.get('targetPort')!r}, not a containerPort of {dep}")
            else:
                targets[p.get("name")] = t
        rep.expect(set(targets.values()) == cport_set,
                   f"{svc}: targetPorts {sorted(set(targets.values()))} are the containerPorts",
                   f"{svc}: targetPorts {sorted(set(targets.values()))} differ from containerPorts {sorted(cport_set)}")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    if not pdbs:
        rep.fail("no PodDisruptionBudget")
    for pdb in pdbs:
        pspec = pdb.body.get("spec") or {}
        rep.expect(selector_matches(pspec.get("selector"), pod_labels),
                   f"{pdb}: selector selects the Deployment's pods",
                   f"{pdb}: selector {pspec.get('selector')} does not select the Deployment's pods {pod_labels}")

        def count(v: Any) -> int:
            if isinstance(v, str) and v.endswith("%"):
                return math.ceil(min_replicas * int(v[:-1]) / 100)
            return int(v)

        if "minAvailable" in pspec:
            n = count(pspec["minAvailable"])
            rep.expect(1 <= n < min_replicas, f"{pdb}: minAvailable {n} of {min_replicas} lets one pod drain at a time",
                       f"{pdb}: minAvailable {n} with {min_replicas} replicas " +
                       ("blocks every voluntary eviction (node drains hang)" if n >= min_replicas else "protects nothing"))
        elif "maxUnavailable" in pspec:
            n = count(pspec["maxUnavailable"])
            rep.expect(1 <= n < min_replicas, f"{pdb}: maxUnavailable {n} of {min_replicas}",
                       f"{pdb}: maxUnavailable {n} with {min_replicas} replicas " +
                       ("blocks every voluntary eviction (node drains hang)" if n < 1 else "lets every pod go at once"))
        else:
            rep.fail(f"{pdb}: neither minAvailable nor maxUnavailable")
    all_hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if not all_hpas:
        rep.fail("no HorizontalPodAutoscaler")
    for h in all_hpas:
        hs = h.body.get("spec") or {}
        ref = hs.get("scaleTargetRef") or {}
        rep.expect(ref.get("kind") == "Deployment" and ref.get("name") == dep.name and ref.get("apiVersion", "apps/v1") == "apps/v1",
                   f"{h}: scales {dep}", f"{h}: scaleTargetRef {ref} is not {dep}")
        cpu = [m for m in hs.get("metrics") or [] if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu"]
        rep.expect(bool(cpu), f"{h}: scales on CPU", f"{h}: has no CPU resource metric")
        if cpu and (cpu[0]["resource"].get("target") or {}).get("type") == "Utilization":
            rep.expect(bool((res.get("requests") or {}).get("cpu")), f"{h}: CPU utilization is against the container's CPU request",
                       f"{h}: CPU utilization needs a CPU request on the container")
        rep.expect(hs.get("maxReplicas", 0) >= hs.get("minReplicas", 1), f"{h}: maxReplicas >= minReplicas",
                   f"{h}: maxReplicas < minReplicas")

    for s in secrets.values():
        vals = {**(s.body.get("data") or {}), **(s.body.get("stringData") or {})}
        if any("CHANGE-ME" in str(v) for v in vals.values()):
            rep.warn(f"{s} holds CHANGE-ME placeholders: fill them in before applying")
    return facts


# --- the Dockerfile ------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    if cur.strip():
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(arg: str) -> list[str] | None:
    try:
        v = json.loads(arg)
        return [str(x) for x in v] if isinstance(v, list) else None
    except json.JSONDecodeError:
        return None


def check_dockerfile(dockerfile: Path, context: Path, facts: dict, rep: Report) -> None:
    if not dockerfile.is_file():
        rep.fail(f"{dockerfile}: no such file")
        return
    ins = dockerfile_instructions(dockerfile.read_text())
    froms = [i for i, (w, _) in enumerate(ins) if w == "FROM"]
    if not froms:
        rep.fail(f"{dockerfile.name}: no FROM")
        return
    final = ins[froms[-1]:]
    name = dockerfile.name

    users = [a for w, a in final if w == "USER"]
    if not users:
        rep.fail(f"{name}: the final stage has no USER: the image runs as root")
    else:
        user = users[-1].split(":")[0]
        numeric = user.isdigit()
        rep.expect(user not in ("root", "0"), f"{name}: USER {users[-1]} is not root", f"{name}: USER {users[-1]} is root")
        if facts.get("run_as_non_root") and facts.get("uid") is None:
            rep.expect(numeric, f"{name}: USER is numeric, as runAsNonRoot without runAsUser needs",
                       f"{name}: USER {user} is a name: the kubelet refuses runAsNonRoot pods without runAsUser")
        if numeric and facts.get("uid") is not None:
            rep.expect(int(user) == int(facts["uid"]), f"{name}: USER {user} is the pods' runAsUser",
                       f"{name}: USER {user} differs from the pods' runAsUser {facts['uid']}")

    hcs = [a for w, a in final if w == "HEALTHCHECK"]
    rep.expect(bool(hcs) and not hcs[-1].upper().startswith("NONE"), f"{name}: HEALTHCHECK present",
               f"{name}: no HEALTHCHECK in the final stage")

    exposed: set[int] = set()
    for w, a in final:
        if w == "EXPOSE":
            for p in a.split():
                port = p.split("/")[0]
                if port.isdigit():
                    exposed.add(int(port))
    if "container_ports" in facts:
        rep.expect(exposed == facts["container_ports"], f"{name}: EXPOSE {sorted(exposed)} = the Deployment's containerPorts",
                   f"{name}: EXPOSE {sorted(exposed)} differs from the Deployment's containerPorts {sorted(facts['container_ports'])}")

    stops = [a for w, a in final if w == "STOPSIGNAL"]
    if stops:
        rep.expect(stops[-1].upper() in ("SIGTERM", "TERM", "15", "SIGINT", "INT", "2"),
                   f"{name}: STOPSIGNAL {stops[-1]} starts Sluice's drain",
                   f"{name}: STOPSIGNAL {stops[-1]}: Sluice drains on SIGTERM or SIGINT only")

    # The image's own config: where CMD points, from the COPY that puts it there.
    cmd = next((exec_form(a) for w, a in reversed(final) if w == "CMD"), None) or []
    cfg_path = next((cmd[i + 1] for i, a in enumerate(cmd[:-1]) if a in ("--config", "-c")), None)
    if not cfg_path:
        rep.fail(f"{name}: CMD {cmd} does not run with --config")
        return
    src = None
    for w, a in final:
        if w != "COPY" or "--from" in a:
            continue
        parts = [p for p in shlex.split(a) if not p.startswith("--")]
        if len(parts) >= 2:
            dest = parts[-1]
            for s in parts[:-1]:
                if dest == cfg_path or (dest.endswith("/") and dest + posixpath.basename(s) == cfg_path):
                    src = context / s
    if src is None or not src.is_file():
        rep.fail(f"{name}: no COPY from the build context puts {cfg_path} in the image")
        return
    try:
        ccfg = tomllib.loads(src.read_text())
    except tomllib.TOMLDecodeError as e:
        rep.fail(f"{src}: not TOML: {e}")
        return
    rep.ok(f"{name}: CMD runs with {cfg_path} (from {src.relative_to(context) if src.is_relative_to(context) else src})")
    ports = {}
    for section, default in (("server", DEFAULT_LISTEN), ("flight", None), ("pg", None)):
        sec = ccfg.get(section)
        addr = (sec or {}).get("listen", default) if isinstance(sec, dict) or default else None
        if addr:
            host, port = parse_addr(addr)
            ports[section] = port
            rep.expect(is_unspecified(host) and port in exposed,
                       f"image config: {section} listens on {addr}, an exposed port on all interfaces",
                       f"image config: {section} listens on {addr}: not all interfaces, or port not in EXPOSE {sorted(exposed)}")
    needs = [(w, v) for w, t in walk_strings(ccfg) for v, d in env_refs(t) if not d]
    rep.expect(not needs, "image config starts without any environment variable",
               "image config needs " + ", ".join(f"${{{v}}} ({w})" for w, v in needs) + " to start")
    # The health check's default URL is the HTTP listener.
    if hcs:
        script = None
        for w, a in final:
            if w == "COPY":
                parts = [p for p in shlex.split(a) if not p.startswith("--")]
                if len(parts) >= 2 and parts[-1] in hcs[-1]:
                    script = context / parts[0]
        text = script.read_text() if script and script.is_file() else hcs[-1]
        m = re.search(r"https?://(?:127\.0\.0\.1|localhost):(\d+)/health", text)
        if m and "server" in ports:
            rep.expect(int(m.group(1)) == ports["server"], f"{name}: HEALTHCHECK GETs /health on port {m.group(1)}, the HTTP listener",
                       f"{name}: HEALTHCHECK GETs port {m.group(1)}, but the image config listens on {ports['server']}")


# --- main ----------------------------------------------------------------------------------


def kustomize(kdir: Path, rep: Report) -> None:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print("  skip  kubectl kustomize (kubectl not on PATH)")
        return
    try:
        run = subprocess.run([kubectl, "kustomize", str(kdir)], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        rep.fail(f"kubectl kustomize {kdir}: {e}")
        return
    if run.returncode != 0:
        rep.fail(f"kubectl kustomize {kdir}: {run.stderr.strip()[-800:]}")
        return
    kinds = [d.get("kind") for d in yaml.safe_load_all(run.stdout) if d]
    rep.ok(f"kubectl kustomize renders {len(kinds)} objects: {', '.join(kinds)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=HERE, help="the kustomization folder (default: this script's)")
    ap.add_argument("--dockerfile", type=Path, help="default: DIR/../container/Dockerfile")
    ap.add_argument("--context", type=Path, help="the Docker build context (default: DIR/../..)")
    ap.add_argument("--k8s-version", action="append", dest="versions",
                    help=f"Kubernetes version(s) to validate against (default: {DEFAULT_SCHEMA_FLOOR} and the newest bundled)")
    ap.add_argument("--skip-schema", action="store_true", help="no schema validation (kubernetes-validate not needed)")
    ap.add_argument("--no-kubectl", action="store_true", help="do not run `kubectl kustomize` even when kubectl is on PATH")
    a = ap.parse_args(argv)
    kdir = a.dir.resolve()
    dockerfile = (a.dockerfile or kdir.parent / "container" / "Dockerfile").resolve()
    context = (a.context or kdir.parent.parent).resolve()
    rep = Report()
    try:
        print(f"check.py: {kdir}")
        objects = load_objects(kdir, rep)
        print(f"-- {len(objects)} objects: " + ", ".join(map(str, objects)))
        if a.skip_schema:
            rep.warn("schema validation skipped (--skip-schema)")
        else:
            validate_schemas(objects, a.versions, rep)
        print("-- consistency")
        facts = check_kubernetes(objects, rep)
        print(f"-- {dockerfile}")
        check_dockerfile(dockerfile, context, facts, rep)
        if not a.no_kubectl:
            kustomize(kdir, rep)
    except Unusable as e:
        print(f"check.py: cannot check: {e}", file=sys.stderr)
        return 2
    if rep.warnings:
        print(f"{len(rep.warnings)} warning(s)")
    print(f"{rep.passed} passed, {len(rep.failures)} failed")
    if rep.failures:
        print("FAILED:", file=sys.stderr)
        for f in rep.failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
