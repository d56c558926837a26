"""A small fake W&B server on 127.0.0.1 for tests: enough of the API for the real wandb client.

The real ``wandb`` package (its Python public API and its ``wandb-core`` service) is pointed at
this server with ``WANDB_BASE_URL``. Requests are matched on the GraphQL operation name the
client really sends (captured by pointing wandb 0.31 at a logging server):

* reading (``wandb.Api``): ``Viewer``, ``GetDefaultEntity``, ``Runs`` (server-side filters, pages),
  ``Run``, ``RunHistoryKeys``, ``RunParquetHistory`` (history served as a Parquet file, as the real
  server exports it), ``RunFullHistory`` and ``RunSampledHistory`` (``run.history()``);
* writing (``wandb.init`` / ``log`` / ``finish``): ``RunResumeStatus``, ``UpsertBucket``,
  ``CreateRunFiles`` (+ ``PUT`` of each file), ``ServerFeaturesQuery``, the ``file_stream``
  endpoint that carries history, summary and the exit code, and for logged tables (which W&B
  stores as ``run_table`` artifacts) ``ArtifactType``, ``CreateArtifact``,
  ``CreateArtifactManifest``, ``CreateArtifactFiles`` (+ ``PUT``) and ``CommitArtifact``.

Any other GraphQL operation gets a GraphQL error naming it and is recorded in ``unknown``, so a
client that starts sending something new fails loudly instead of being answered with made-up
data; operations listed in ``fail`` get an error too (failure tests). Every request must carry
the API key the server was started with (HTTP basic auth ``api:<key>``); others get 401.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeRun", "FakeWandb"]

_OPERATION = re.compile(r"\b(query|mutation)\s+(\w+)")
_FRAGMENT = re.compile(r"fragment\s+\w+\s+on\s+Run\s*\{(?P<body>.*?)\n\s*\}", re.S)


@dataclass
class FakeRun:
    """One run held by the fake server (``name`` is the W&B run id)."""

    entity: str
    project: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)  # plain values, as run.config shows them
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per line, with _step
    summary: dict[str, Any] = field(default_factory=dict)
    state: str = "finished"
    display_name: str | None = None
    group: str | None = None
    job_type: str | None = None
    tags: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    created_at: str = "2024-01-01T00:00:00"
    exitcode: int | None = None

    @property
    def gid(self) -> str:
        return base64.b64encode(f"Run:v1:{self.name}:{self.project}:{self.entity}".encode()).decode()

    def wandb_config(self) -> str:
        """The config as the server stores it: ``{key: {"value": v, "desc": None}}``."""
        return json.dumps({k: {"value": v, "desc": None} for k, v in self.config.items()})

    def last_step(self) -> int:
        return max((int(row.get("_step", i)) for i, row in enumerate(self.history)), default=-1)

    def history_keys(self) -> dict[str, Any]:
        keys: dict[str, Any] = {}
        for row in self.history:
            for k, v in row.items():
                kind = "number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__
                keys.setdefault(k, {"typeCounts": [{"type": kind, "count": 0}]})
                keys[k]["typeCounts"][0]["count"] += 1
        return {"lastStep": self.last_step(), "keys": keys}


def _matches(run: FakeRun, filters: Mapping[str, Any]) -> bool:
    """A subset of the MongoDB-style run filters the W&B server accepts."""
    for key, want in filters.items():
        if key == "$and":
            if not all(_matches(run, f) for f in want):
                return False
            continue
        if key == "$or":
            if not any(_matches(run, f) for f in want):
                return False
            continue
        if key.startswith("config."):
            have: Any = run.config
            for part in key.split(".")[1:]:
                have = have.get(part) if isinstance(have, Mapping) else None
            if isinstance(have, Mapping) and "value" in have:
                have = have["value"]
        elif key.startswith("summary_metrics."):
            have = run.summary.get(key.split(".", 1)[1])
        elif key in ("display_name", "displayName"):
            have = run.display_name
        elif key in ("state", "group", "tags", "name"):
            have = {"state": run.state, "group": run.group, "tags": run.tags, "name": run.name}[key]
        else:
            raise ValueError(f"fake server: unsupported filter key {key!r}")
        if not _compare(have, want):
            return False
    return True


def _compare(have: Any, want: Any) -> bool:
    if not isinstance(want, Mapping):
        return want in have if isinstance(have, list) else have == want
    for op, arg in want.items():
        if op == "$in":
            ok = any(h in arg for h in have) if isinstance(have, list) else have in arg
        elif op == "$nin":
            ok = have not in arg
        elif op == "$ne":
            ok = have != arg
        elif op == "$regex":
            ok = isinstance(have, str) and re.search(arg, have) is not None
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            if have is None:
                return False
            ok = {"$gt": have > arg, "$gte": have >= arg, "$lt": have < arg, "$lte": have <= arg}[op]
        else:
            raise ValueError(f"fake server: unsupported filter operator {op!r}")
        if not ok:
            return False
    return True


class FakeWandb:
    """A fake W&B server in a background thread; use as a context manager.

    Parameters
    ----------
    api_key : str
        The only key the server accepts.
    entity : str
        The viewer's default entity.

    Examples
    --------
    >>> with FakeWandb("k" * 40) as server:  # doctest: +SKIP
    ...     server.add_run(FakeRun("ent", "proj", "r1", config={"lr": 0.1}, history=[...]))
    ...     os.environ["WANDB_BASE_URL"] = server.url
    """

    def __init__(self, api_key: str, *, entity: str = "ent") -> None:
        self.api_key = api_key
        self.entity = entity
        self._runs: dict[tuple[str, str, str], FakeRun] = {}
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, graphql operation
        self.unknown: list[str] = []  # GraphQL operations answered with an error
        self.rejected = 0  # requests without the right key
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.fail: set[str] = set()  # operations to answer with a GraphQL error (failure tests)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def __enter__(self) -> FakeWandb:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server with `with FakeWandb(...)`"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- state
    def add_run(self, run: FakeRun) -> FakeRun:
        with self._lock:
            self._runs[(run.entity, run.project, run.name)] = run
        return run

    def runs(self, entity: str, project: str) -> list[FakeRun]:
        with self._lock:
            return [r for (e, p, _), r in self._runs.items() if (e, p) == (entity, project)]

    def run(self, entity: str, project: str, name: str) -> FakeRun | None:
        with self._lock:
            return self._runs.get((entity, project, name))

    def operations(self) -> list[str]:
        return [op for _, _, op in self.requests if op]

    # -- GraphQL
    def graphql(self, query: str, variables: Mapping[str, Any], operation: str | None) -> dict[str, Any]:
        op = operation or (m.group(2) if (m := _OPERATION.search(query)) else None)
        self.requests.append(("POST", "/graphql", op))
        handler = getattr(self, f"_op_{op}", None)
        if op in self.fail:
            return {"data": None, "errors": [{"message": f"fake server: {op} fails (test)"}]}
        if handler is None:
            self.unknown.append(str(op))
            return {"data": None, "errors": [{"message": f"fake server: unsupported operation {op!r}"}]}
        with self._lock:
            return {"data": handler(query, dict(variables))}

    def _viewer(self) -> dict[str, Any]:
        return {"id": "VXNlcjox", "entity": self.entity, "username": "tester", "email": "tester@example.org",
                "flags": "{}", "teams": {"edges": []}}

    def _op_Viewer(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        return {"viewer": self._viewer()}

    _op_GetDefaultEntity = _op_Viewer

    def _node(self, run: FakeRun, query: str) -> dict[str, Any]:
        full = {
            "id": run.gid, "name": run.name, "displayName": run.display_name or run.name, "tags": run.tags,
            "sweepName": None, "state": run.state, "group": run.group, "jobType": run.job_type, "commit": None,
            "readOnly": False, "createdAt": run.created_at, "heartbeatAt": run.created_at, "description": None,
            "notes": None, "systemMetrics": "{}", "summaryMetrics": json.dumps(run.summary),
            "historyLineCount": len(run.history), "user": {"name": "tester", "username": "tester"},
            "historyKeys": run.history_keys(), "config": run.wandb_config(), "projectId": 1,
        }
        m = _FRAGMENT.search(query)
        if m is None:
            return full
        wanted = set(re.findall(r"^\s*(\w+)", m.group("body"), re.M)) | {"projectId"}
        return {k: v for k, v in full.items() if k in wanted}

    def _op_Runs(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        filters = json.loads(v.get("filters") or "{}")
        runs = [r for (e, p, _), r in self._runs.items() if (e, p) == (v["entity"], v["project"])]
        runs = sorted((r for r in runs if _matches(r, filters)), key=lambda r: (r.created_at, r.name),
                      reverse=str(v.get("order", "")).startswith("-"))
        start = int(v["cursor"]) if v.get("cursor") else 0
        per_page = int(v.get("perPage") or 50)
        page = runs[start : start + per_page]
        edges = [{"node": self._node(r, query), "cursor": str(start + i + 1)} for i, r in enumerate(page)]
        return {"project": {"internalId": "UHJvamVjdDox", "runCount": len(runs), "readOnly": False,
                            "runs": {"edges": edges, "pageInfo": {"endCursor": str(start + len(page)),
                                                                  "hasNextPage": start + per_page < len(runs)}}}}

    def _project_run(self, v: dict[str, Any], name_key: str = "name") -> FakeRun | None:
        return self._runs.get((v["entity"], v["project"], v[name_key]))

    def _op_Run(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        run = self._project_run(v)
        return {"project": {"run": None if run is None else self._node(run, query)}}

    def _op_RunState(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        run = self._project_run(v)
        return {"project": {"run": None if run is None else {"state": run.state}}}

    def _op_RunHistoryKeys(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        run = self._project_run(v)
        return {"project": {"run": None if run is None else {"historyKeys": run.history_keys()}}}

    def _op_RunParquetHistory(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        run = self._project_run(v, "runName")
        if run is None:
            return {"project": {"run": None}}
        url = f"{self.url}/parquet/{run.entity}/{run.project}/{run.name}.parquet"
        return {"project": {"run": {"parquetHistory": {"parquetUrls": [url], "liveData": []}}}}

    def _op_RunFullHistory(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        run = self._project_run(v)
        rows = _sample(run.history if run else [], int(v.get("samples") or 500))
        return {"project": {"run": {"history": [json.dumps(r) for r in rows]}}}

    def _op_RunSampledHistory(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        run = self._project_run(v)
        out = []
        for spec in v["specs"]:
            spec = json.loads(spec)
            keys = spec["keys"]
            rows = [{k: r[k] for k in keys if k in r} for r in (run.history if run else [])
                    if all(k in r for k in keys)]
            out.append(_sample(rows, int(spec.get("samples", 500))))
        return {"project": {"run": {"sampledHistory": out}}}

    def _op_RunResumeStatus(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        run = self._runs.get((v.get("entity") or self.entity, v["project"], v["name"]))
        bucket = None
        if run is not None:
            bucket = {
                "id": run.gid, "name": run.name, "summaryMetrics": json.dumps(run.summary),
                "displayName": run.display_name, "logLineCount": 0, "historyLineCount": len(run.history),
                "eventsLineCount": 0, "historyTail": json.dumps([json.dumps(r) for r in run.history[-10:]]),
                "eventsTail": "[]", "config": run.wandb_config(), "tags": run.tags, "notes": None,
                "wandbConfig": json.dumps({"t": run.config.get("_wandb", {}).get("t")}),
            }
        return {"model": {"id": "UHJvamVjdDox", "name": v["project"],
                          "entity": {"id": "RW50aXR5OjE=", "name": v.get("entity") or self.entity},
                          "bucket": bucket}}

    def _op_UpsertBucket(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        entity, project = v.get("entity") or self.entity, v.get("project") or "uncategorized"
        key = (entity, project, v["name"])
        inserted = key not in self._runs
        run = self._runs.setdefault(key, FakeRun(entity, project, v["name"], state="running"))
        if v.get("config"):
            cfg = json.loads(v["config"])
            run.config.update({k: (c["value"] if isinstance(c, Mapping) and "value" in c else c) for k, c in cfg.items()})
        for var, attr in (("displayName", "display_name"), ("groupName", "group"), ("jobType", "job_type"),
                          ("tags", "tags"), ("state", "state")):
            if v.get(var) is not None:
                setattr(run, attr, v[var])
        if v.get("summaryMetrics"):
            run.summary.update(json.loads(v["summaryMetrics"]))
        return {"upsertBucket": {"bucket": {
            "id": run.gid, "name": run.name, "displayName": run.display_name, "description": None,
            "config": run.wandb_config(), "sweepName": None,
            "project": {"id": "UHJvamVjdDox", "name": project, "entity": {"id": "RW50aXR5OjE=", "name": entity}},
            "historyLineCount": len(run.history)}, "inserted": inserted}}

    def _op_CreateRunFiles(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        base = f"{self.url}/upload/{v['entity']}/{v['project']}/{v['run']}"
        return {"createRunFiles": {"runID": v["run"], "uploadHeaders": [],
                                   "files": [{"name": f, "uploadUrl": f"{base}/{f}"} for f in v["files"]]}}

    def _op_ServerFeaturesQuery(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        return {"serverInfo": {"features": []}}

    # -- artifacts (W&B stores every logged table as a run_table artifact)
    def _op_ArtifactType(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        art = next((a for a in self.artifacts.values() if f"{a['name']}:latest" == v["name"]), None)
        return {"project": {"artifact": None if art is None else {"artifactType": {"name": art["type"]}}}}

    def _op_CreateArtifact(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        inp = v["input"]
        art_id = base64.b64encode(f"Artifact:{len(self.artifacts) + 1}".encode()).decode()
        self.artifacts[art_id] = {"name": inp["artifactCollectionName"], "type": inp["artifactTypeName"],
                                  "run": inp.get("runName"), "digest": inp.get("digest"), "state": "PENDING",
                                  "files": {}}
        return {"createArtifact": {"artifact": {"id": art_id, "state": "PENDING",
                                                "artifactSequence": {"latestArtifact": None}}}}

    def _op_CreateArtifactManifest(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        art = v["artifactID"]
        file: dict[str, Any] = {"id": f"{art}-manifest"}
        if v.get("includeUpload"):
            file.update(uploadUrl=f"{self.url}/upload-artifact/{art}/{v['name']}", uploadHeaders=[])
        return {"createArtifactManifest": {"artifactManifest": {"id": f"{art}-manifest", "file": file}}}

    def _op_CreateArtifactFiles(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        edges = []
        for f in v["input"]["artifactFiles"]:
            path = f"{f['artifactID']}/{f['name']}"
            edges.append({"node": {"storagePath": path, "uploadUrl": f"{self.url}/upload-artifact/{path}",
                                   "uploadHeaders": [], "uploadMultipartUrls": None,
                                   "artifact": {"id": f["artifactID"]}}})
        return {"createArtifactFiles": {"files": {"edges": edges}}}

    def _op_CommitArtifact(self, query: str, v: dict[str, Any]) -> dict[str, Any]:
        art = self.artifacts[v["artifactID"]]
        art["state"] = "COMMITTED"
        return {"commitArtifact": {"artifact": {"id": v["artifactID"], "digest": art["digest"]}}}

    # -- REST endpoints
    def file_stream(self, entity: str, project: str, name: str, body: Mapping[str, Any]) -> None:
        self.requests.append(("POST", f"/files/{entity}/{project}/{name}/file_stream", None))
        with self._lock:
            run = self._runs.setdefault((entity, project, name), FakeRun(entity, project, name, state="running"))
            for fname, chunk in (body.get("files") or {}).items():
                lines = [json.loads(c) for c in chunk.get("content", [])] if fname.endswith((".jsonl", ".json")) else []
                if fname == "wandb-history.jsonl":
                    offset = int(chunk.get("offset", 0))
                    run.history[offset : offset + len(lines)] = lines  # a retried chunk replaces itself
                elif fname == "wandb-summary.json" and lines:
                    run.summary = lines[-1]
            if body.get("complete"):
                run.exitcode = int(body.get("exitcode") or 0)
                run.state = "finished" if run.exitcode == 0 else "failed"

    def upload(self, path: str, data: bytes) -> None:
        self.requests.append(("PUT", path, None))
        _, _, entity, project, name, fname = path.split("/", 5)
        with self._lock:
            run = self._runs.setdefault((entity, project, name), FakeRun(entity, project, name, state="running"))
            run.files[fname] = data

    def upload_artifact_file(self, path: str, data: bytes) -> None:
        self.requests.append(("PUT", path, None))
        _, _, art, name = path.split("/", 3)
        with self._lock:
            self.artifacts[art]["files"][name] = data

    def parquet(self, entity: str, project: str, name: str) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.requests.append(("GET", f"/parquet/{entity}/{project}/{name}.parquet", None))
        with self._lock:
            run = self._runs[(entity, project, name)]
            rows = copy.deepcopy(run.history)
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        columns = {k: [_cell(r.get(k)) for r in rows] for k in keys}
        buf = io.BytesIO()
        pq.write_table(pa.table(columns), buf)
        return buf.getvalue()


def _cell(value: Any) -> Any:
    """A history value as a Parquet cell (nested values, e.g. media, as JSON text)."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _sample(rows: list[dict[str, Any]], samples: int) -> list[dict[str, Any]]:
    if len(rows) <= samples:
        return rows
    stride = len(rows) / samples
    return [rows[int(i * stride)] for i in range(samples)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeWandb

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: Any, code: int = 200) -> None:
        self._send(code, json.dumps(obj).encode())

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        if self.headers.get("Content-Encoding") == "gzip":
            import gzip

            data = gzip.decompress(data)
        return data

    def _authorised(self) -> bool:
        auth = self.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"api:{self.fake.api_key}".encode()).decode()
        if auth == expected or self.path.startswith(("/upload/", "/upload-artifact/", "/parquet/")):  # presigned URLs
            return True
        self.fake.rejected += 1
        return False

    def do_POST(self) -> None:
        body = self._body()
        if self.path.startswith("/sdk/otel/"):  # the client's own telemetry
            return self._json({})
        if not self._authorised():
            return self._json({"errors": [{"message": "invalid api key"}]}, 401)
        if self.path.split("?")[0] == "/graphql":
            req = json.loads(body)
            return self._json(self.fake.graphql(req["query"], req.get("variables") or {}, req.get("operationName")))
        m = re.fullmatch(r"/files/([^/]+)/([^/]+)/([^/]+)/file_stream", self.path.split("?")[0])
        if m:
            self.fake.file_stream(*m.groups(), json.loads(body or b"{}"))
            return self._json({"exitcode": None, "limits": {}})
        self.fake.unknown.append(f"POST {self.path}")
        self._json({"errors": [{"message": f"fake server: no POST {self.path}"}]}, 404)

    def do_PUT(self) -> None:
        body = self._body()
        if self.path.startswith("/upload/"):
            self.fake.upload(self.path.split("?")[0], body)
            return self._send(200, b"")
        if self.path.startswith("/upload-artifact/"):
            self.fake.upload_artifact_file(self.path.split("?")[0], body)
            return self._send(200, b"")
        self.fake.unknown.append(f"PUT {self.path}")
        self._json({"errors": [{"message": f"fake server: no PUT {self.path}"}]}, 404)

    def do_GET(self) -> None:
        m = re.fullmatch(r"/parquet/([^/]+)/([^/]+)/([^/]+)\.parquet", self.path.split("?")[0])
        if m:
            return self._send(200, self.fake.parquet(*m.groups()), "application/octet-stream")
        if not self._authorised():
            return self._json({"errors": [{"message": "invalid api key"}]}, 401)
        self.fake.unknown.append(f"GET {self.path}")
        self._json({"errors": [{"message": f"fake server: no GET {self.path}"}]}, 404)

