"""A small Kubernetes API stand-in on 127.0.0.1 for the official client to talk to over HTTP.

It records every call and keeps objects in memory. Enough of the API for relctl's backends:
server-side apply (PATCH application/apply-patch+yaml creates or updates; fields a manager
applied before and leaves out now are removed, as Kubernetes does), POST (create; 409 when
it exists), PUT (replace; 409 on a stale resourceVersion), GET of an object or a
list (label selector k=v,... and field selector involvedObject.name), DELETE. Tests steer it:
`fail_next` answers the next matching call with an error status, `put` stores an object as
the cluster's controllers would (pods, events, a Deployment's status), `edit` changes an
object as another actor would (a drift).

kmock (PyPI) was tried first: its emulator answers a PATCH to a missing object with 404
(no server-side apply) and its pytest plugin needs pytest-asyncio, so relctl uses this.
"""
from __future__ import annotations

import copy
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

PATH = re.compile(r"^/(?:api/v1|apis/[^/]+/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?$")


@dataclass
class Call:
    method: str
    path: str
    query: dict
    content_type: str
    body: dict | None
    status: int = 0
    agent: str = ""                 # the client's User-Agent: which replica made the call
    at: float = field(default_factory=time.time)


@dataclass
class _Stored:
    obj: dict
    applied: dict[str, dict] = field(default_factory=dict)   # field manager -> its last applied body


class KubeEmulator:
    def __init__(self):
        self.calls: list[Call] = []
        self._objects: dict[str, _Stored] = {}
        self._faults: list[tuple[str, str, int, str]] = []
        self._refused: dict[str, int] = {}       # User-Agent -> status every call of it gets
        self.after_apply = None          # callable(path, obj): another actor acting on each write
        self._lock = threading.Lock()
        self._rv = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def write_kubeconfig(self, path: Path, token: str = "emulator") -> Path:
        """A kubeconfig whose one context talks to this emulator (as the official client loads it)."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emu",
            "clusters": [{"name": "emu", "cluster": {"server": self.url}}],
            "users": [{"name": "relctl", "user": {"token": token}}],
            "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "relctl"}}]}))
        return path

    def __enter__(self) -> "KubeEmulator":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- steering from tests -------------------------------------------------------------
    def fail_next(self, method: str, path_part: str, status: int, message: str = "injected") -> None:
        self._faults.append((method, path_part, status, message))

    def refuse(self, agent: str, status: int = 503) -> None:
        """Answer every call from this User-Agent with `status` (a replica cut off from the API server)."""
        self._refused[agent] = status

    def paths(self, part: str) -> list[str]:
        """Paths of the stored objects whose path contains `part` (e.g. "/deployments/")."""
        with self._lock:
            return sorted(p for p in self._objects if part in p)

    def get(self, path: str) -> dict | None:
        with self._lock:
            stored = self._objects.get(path)
            return copy.deepcopy(stored.obj) if stored else None

    def put(self, path: str, obj: dict) -> None:
        with self._lock:
            self._objects[path] = _Stored(self._stamp(copy.deepcopy(obj), None))

    def edit(self, path: str, change) -> None:
        with self._lock:
            change(self._objects[path].obj)
            self._stamp(self._objects[path].obj, self._objects[path].obj)

    def delete(self, path: str) -> None:
        with self._lock:
            self._objects.pop(path, None)

    def writes(self) -> list[tuple[str, str]]:
        return [(c.method, c.path) for c in self.calls if c.method != "GET"]

    # ---- the API -------------------------------------------------------------------------
    def _serve(self, method: str, raw_path: str, content_type: str, body: dict | None,
               agent: str = "") -> tuple[int, dict]:
        parts = urlsplit(raw_path)
        call = Call(method, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}, content_type, body,
                    agent=agent)
        self.calls.append(call)
        call.status, doc = self._answer(call)
        return call.status, doc

    def _answer(self, call: Call) -> tuple[int, dict]:
        if call.agent in self._refused:
            return self._refused[call.agent], _status(self._refused[call.agent], "refused")
        for i, (m, part, status, message) in enumerate(self._faults):
            if m == call.method and part in call.path:
                del self._faults[i]
                return status, _status(status, message)
        match = PATH.match(call.path)
        if not match:
            return 404, _status(404, f"no route {call.path}")
        with self._lock:
            if call.method == "PATCH":
                return self._apply(call)
            if call.method == "POST":
                return self._create(call)
            if call.method == "PUT":
                return self._replace(call)
            if call.method == "DELETE":
                return (200, _status(200, "deleted")) if self._objects.pop(call.path, None) else \
                    (404, _status(404, f"{match['name']} not found"))
            if match["name"]:
                stored = self._objects.get(call.path)
                return (200, copy.deepcopy(stored.obj)) if stored else (404, _status(404, f"{match['name']} not found"))
            return 200, {"items": [copy.deepcopy(s.obj) for p, s in sorted(self._objects.items())
                                   if p.rsplit("/", 1)[0] == call.path and _selected(s.obj, call.query)]}

    def _apply(self, call: Call) -> tuple[int, dict]:
        if call.content_type != "application/apply-patch+yaml" or not call.query.get("fieldManager"):
            return 415, _status(415, "only server-side apply with a fieldManager is emulated")
        manager, stored = call.query["fieldManager"], self._objects.get(call.path)
        if stored is None:
            stored = self._objects[call.path] = _Stored(self._stamp(copy.deepcopy(call.body), None))
        else:
            old = copy.deepcopy(stored.obj)
            _remove_dropped(stored.obj, stored.applied.get(manager, {}), call.body)
            _merge(stored.obj, copy.deepcopy(call.body))
            self._stamp(stored.obj, old)
        stored.applied[manager] = copy.deepcopy(call.body)
        reply = copy.deepcopy(stored.obj)
        if self.after_apply:
            self.after_apply(call.path, stored.obj)
        return 200, reply

    def _create(self, call: Call) -> tuple[int, dict]:
        path = f"{call.path}/{call.body['metadata']['name']}"
        if path in self._objects:
            return 409, _status(409, f"{call.body['metadata']['name']} already exists")
        self._objects[path] = _Stored(self._stamp(copy.deepcopy(call.body), None))
        return 201, copy.deepcopy(self._objects[path].obj)

    def _replace(self, call: Call) -> tuple[int, dict]:
        """PUT with optimistic concurrency: a stale resourceVersion is a 409 Conflict."""
        stored = self._objects.get(call.path)
        if stored is None:
            return 404, _status(404, "not found")
        if call.body.get("metadata", {}).get("resourceVersion") != stored.obj["metadata"]["resourceVersion"]:
            return 409, _status(409, "the object has been modified; please apply your changes to the latest version")
        old, stored.obj = stored.obj, copy.deepcopy(call.body)
        self._stamp(stored.obj, old)
        return 200, copy.deepcopy(stored.obj)

    def _stamp(self, obj: dict, old: dict | None) -> dict:
        self._rv += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._rv)
        meta.setdefault("uid", f"uid-{self._rv}")
        gen = (old or {}).get("metadata", {}).get("generation", 0)
        changed = old is None or old.get("spec") != obj.get("spec")
        meta["generation"] = gen + 1 if changed else gen
        return obj

    def _handler(self):
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def _do(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                status, doc = emulator._serve(self.command, self.path, self.headers.get("Content-Type", ""), body,
                                              self.headers.get("User-Agent", ""))
                out = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _do

            def log_message(self, *args):
                pass

        return Handler


def _status(code: int, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure" if code >= 400 else "Success",
            "message": message, "code": code}


def _merge(into: dict, patch: dict) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value                     # lists are atomic here


def _remove_dropped(obj: dict, before: dict, now: dict) -> None:
    """Fields the manager applied before and leaves out now are removed (it owned them)."""
    for key, value in before.items():
        if key not in now:
            obj.pop(key, None)
        elif isinstance(value, dict) and isinstance(now[key], dict) and isinstance(obj.get(key), dict):
            _remove_dropped(obj[key], value, now[key])


def _selected(obj: dict, query: dict) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, query.get("labelSelector", "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    for term in filter(None, query.get("fieldSelector", "").split(",")):
        key, _, value = term.partition("=")
        node = obj
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node != value:
            return False
    return True


class Kubelet:
    """What the cluster's own controllers do for relctl's Deployments, on the emulator: one pod per
    Deployment, not ready at first, ready `ready_after` seconds later (its readiness probe passing,
    the Deployment's status following); a deleted Deployment's pod goes with it. `on_pod(name)` is
    told of each new pod (a test starts the server that plays it)."""

    def __init__(self, emu: KubeEmulator, ready_after: float = 1.0, on_pod=None, clock=time.monotonic):
        self._emu, self._ready_after, self._on_pod, self._clock = emu, ready_after, on_pod, clock
        self._born: dict[str, float] = {}          # Deployment path -> when its pod appeared
        self._ready: set[str] = set()
        self._stop = threading.Event()

    def step(self) -> None:
        deployments = self._emu.paths("/deployments/")
        for path in deployments:
            dep = self._emu.get(path)
            if dep is None:
                continue
            if path not in self._born:
                self._born[path] = self._clock()
                self._emu.put(_pod_path(dep), _pod(dep, ready=False))
                if self._on_pod:
                    self._on_pod(dep["metadata"]["name"])
            elif path not in self._ready and self._clock() - self._born[path] >= self._ready_after:
                self._ready.add(path)
                self._emu.put(_pod_path(dep), _pod(dep, ready=True))
                self._emu.edit(path, lambda d: d.update(status={"replicas": 1, "readyReplicas": 1,
                                                                 "availableReplicas": 1}))
        for path in set(self._born) - set(deployments):
            ns, name = path.split("/")[5], path.rsplit("/", 1)[1]
            self._emu.delete(f"/api/v1/namespaces/{ns}/pods/{name}-0")
            self._born.pop(path)
            self._ready.discard(path)

    def run(self, every: float = 0.2) -> "Kubelet":
        def loop():
            while not self._stop.wait(every):
                self.step()
        threading.Thread(target=loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()


def _pod_path(dep: dict) -> str:
    return f"/api/v1/namespaces/{dep['metadata']['namespace']}/pods/{dep['metadata']['name']}-0"


def _pod(dep: dict, ready: bool) -> dict:
    meta = dep["metadata"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    condition = {"type": "Ready", "status": "True"} if ready else \
        {"type": "Ready", "status": "False", "message": "containers with unready status: [vllm]"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{meta['name']}-0", "namespace": meta["namespace"], "labels": labels},
            "status": {"phase": "Running", "conditions": [condition],
                       "containerStatuses": [{"name": "vllm", "ready": ready, "restartCount": 0,
                                              "state": {"running": {}}}]}}


# What quantize_entry.py registers for a build that passed the gate (figures for the default gate).
PASSING_FIGURES = dict(parent_perplexity=10.0, build_perplexity=10.1, perplexity_increase_pct=1.0, parent_accuracy=0.6,
                       build_accuracy=0.6, accuracy_drop_pct=0.0, eval_items=6044, heldout_tokens=4096,
                       parent_layers_bytes_fp16=1000, build_layers_bytes=260, weight_size_ratio=0.26,
                       parent_only_correct=0, build_only_correct=0)


def job_exits(emu: KubeEmulator, namespace: str, name: str, result: dict | None, failed: str = "") -> None:
    """What the cluster shows once a Job's pod has exited: the pod with its termination message
    (`result` as JSON), and the Job's status (succeeded, or failed with reason `failed`)."""
    terminated = {"exitCode": 1 if failed else 0, "reason": "Error" if failed else "Completed"}
    if result is not None:
        terminated["message"] = json.dumps(result)
    emu.put(f"/api/v1/namespaces/{namespace}/pods/{name}-x7k2p", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-x7k2p", "namespace": namespace,
                                                        "labels": {"job-name": name}},
        "status": {"phase": "Failed" if failed else "Succeeded",
                   "containerStatuses": [{"name": "quantize", "state": {"terminated": terminated}}]}})
    status = {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": failed,
                                           "message": "Job has reached the specified backoff limit"}]} \
        if failed else {"succeeded": 1}
    emu.edit(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", lambda job: job.update(status=status))
