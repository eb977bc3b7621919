"""The `relctl` command. Release commands talk to the REST API; exit code 1 + message on error."""
from __future__ import annotations

import argparse
import json
import os
import sys

import httpx

from controller.api_errors import error_detail

EXIT_ERROR = 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gateway"]:
        return _gateway_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except CliError as exc:
        print(f"relctl: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


class CliError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="relctl", description="Release controller for LLM model versions.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the controller: reconcile loop, registry polling, REST API")
    serve.add_argument("--config", help="settings YAML (see README)")
    serve.add_argument("--watch", action="append", default=[], metavar="MODEL[:POLICY]",
                       help="registered model to watch (repeatable)")
    serve.set_defaults(func=_serve)

    # `relctl gateway …` is handed to the gateway's own parser (see main()); listed here for --help.
    sub.add_parser("gateway", help="run the OpenAI-compatible gateway (data plane); see `relctl gateway --help`")

    rel = sub.add_parser("release", help="create, inspect and steer releases through the API")
    rel.add_argument("--api", default=os.environ.get("RELCTL_API", "http://127.0.0.1:8000"))
    rsub = rel.add_subparsers(dest="release_command", required=True)
    c = rsub.add_parser("create")
    c.add_argument("model")
    c.add_argument("version", type=_version, help="MLflow version number, e.g. 3")
    c.add_argument("--policy", help="a policy name known to the server, or a local YAML file (sent inline)")
    c.set_defaults(func=_release_create)
    ls = rsub.add_parser("list")
    ls.add_argument("--model")
    ls.set_defaults(func=lambda a: _api(a, "GET", "/api/v1/releases", params={"model": a.model} if a.model else None))
    g = rsub.add_parser("get", help="the release's phase, weights, counts, judge and job progress")
    g.add_argument("release_id")
    g.add_argument("--json", action="store_true", help="print the API's JSON (for scripts)")
    g.set_defaults(func=_release_get)
    w = rsub.add_parser("watch", help="the same view, redrawn until the release ends")
    w.add_argument("release_id")
    w.add_argument("--interval", type=float, default=2.0, help="seconds between snapshots (default 2)")
    w.set_defaults(func=_release_watch)
    ev = rsub.add_parser("events")
    ev.add_argument("release_id")
    ev.set_defaults(func=lambda a: _api(a, "GET", f"/api/v1/releases/{a.release_id}/events"))
    for action in ("abort", "promote", "pause", "resume"):
        a_ = rsub.add_parser(action)
        a_.add_argument("release_id")
        a_.set_defaults(func=lambda a, act=action: _api(a, "POST", f"/api/v1/releases/{a.release_id}/{act}"))

    st = sub.add_parser("status", help="active releases in a table")
    st.add_argument("--api", default=os.environ.get("RELCTL_API", "http://127.0.0.1:8000"))
    st.add_argument("--json", action="store_true", help="print the API's JSON (for scripts)")
    st.set_defaults(func=_status)

    pol = sub.add_parser("policy", help="validate a rollout policy file")
    pol.add_argument("action", choices=["validate"])
    pol.add_argument("file")
    pol.set_defaults(func=_policy_validate)

    q = sub.add_parser("quantize", help="run the AWQ stage alone on a registered version and print the report")
    q.add_argument("model")
    q.add_argument("version", type=_version)
    q.add_argument("--backend", default="autoawq", choices=["autoawq", "llmcompressor"])
    q.add_argument("--mlflow-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    q.add_argument("--workdir", default=".relctl")
    q.add_argument("--calibration", default=None, metavar="REF",
                   help="calibration texts: a file, mlflow-dataset:RUN_ID/NAME or runs:/RUN_ID/PATH "
                        "(default: built-in)")
    q.set_defaults(func=_quantize)

    t = sub.add_parser("build-tiny-model", help="build a tiny Llama checkpoint (offline) for tests and demos")
    t.add_argument("out")
    t.add_argument("--init-from", help="continue training this checkpoint")
    t.add_argument("--steps", type=int, default=200)
    t.set_defaults(func=_build_tiny)

    d = sub.add_parser("demo", help="run a whole release on this machine with real MLflow, Prometheus and vLLM")
    d.add_argument("--scenario", choices=["healthy", "faulty"], default="healthy")
    d.add_argument("--json", action="store_true", help="end with one JSON line describing the outcome")
    d.add_argument("--workdir", default=None, help="keep the demo's files here (default: a temporary folder)")
    d.set_defaults(func=_demo)

    from controller.integrity_commands import add_integrity_commands
    add_integrity_commands(sub)      # relctl audit verify, relctl verify
    from controller.report.cli import add_report_command
    add_report_command(sub)          # relctl report ID
    from controller.scheduler.cli import add_evals_command
    add_evals_command(sub)           # relctl evals list|run|history MODEL
    from controller.k8s.cli import add_parser as add_k8s_command
    add_k8s_command(sub)             # relctl k8s render, relctl k8s tenants
    return p


def _gateway_main(argv: list[str]) -> int:
    from controller.gateway.__main__ import main as gateway_main
    return gateway_main(argv)


def _serve(args) -> int:
    from controller.server import serve
    return serve(args.config, args.watch)


def _release_create(args) -> int:
    body = {"model": args.model, "version": args.version}
    if args.policy:
        # A local file is read here and sent inline; the server never reads a path it is given.
        from policies.loader import is_policy_name
        body["policy"] = args.policy if is_policy_name(args.policy) else _read_policy(args.policy)
    return _api(args, "POST", "/api/v1/releases", json_body=body)


def _version(text: str) -> str:
    """argparse type: MLflow's canonical version, or a usage error naming the rule."""
    from controller.registry.versions import VersionError, canonical_version
    try:
        return canonical_version(text)
    except VersionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _read_policy(ref: str) -> dict | str:
    from policies.loader import PolicyError, load_policy
    try:
        return load_policy(ref).model_dump(mode="json")
    except PolicyError as exc:
        raise CliError(str(exc)) from None


def _release_get(args) -> int:
    release = _call(args, "GET", f"/api/v1/releases/{args.release_id}")
    if args.json:
        print(json.dumps(release, indent=2))
        return 0
    from rich.console import Console
    from controller.cli_views import release_view
    Console().print(release_view(release))
    return 0


def _release_watch(args) -> int:
    from rich.console import Console
    from controller.cli_views import watch
    last = watch(lambda: _call(args, "GET", f"/api/v1/releases/{args.release_id}"), Console(), args.interval)
    return 0 if last["phase"] == "succeeded" else EXIT_ERROR


def _status(args) -> int:
    releases = _call(args, "GET", "/api/v1/releases", params={"active": "true"})
    if args.json:
        print(json.dumps(releases, indent=2))
        return 0
    from rich.console import Console
    from controller.cli_views import status_table
    Console().print(status_table(releases))
    return 0


def _api(args, method: str, path: str, json_body: dict | None = None, params: dict | None = None) -> int:
    print(json.dumps(_call(args, method, path, json_body, params), indent=2))
    return 0


def _call(args, method: str, path: str, json_body: dict | None = None, params: dict | None = None):
    """The API's JSON answer, or CliError with the API's own message."""
    token = os.environ.get("RELCTL_TOKEN", "")
    try:
        resp = httpx.request(method, args.api.rstrip("/") + path, json=json_body, params=params, timeout=30,
                             headers={"Authorization": f"Bearer {token}"} if token else {})
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the relctl API at {args.api}: {exc}") from None
    if resp.status_code >= 400:
        detail = error_detail(resp)
        raise CliError(f"HTTP {resp.status_code}: {detail}")
    return resp.json()


def _policy_validate(args) -> int:
    policy = _read_policy(args.file)
    print(f"{args.file}: valid policy {policy['name']!r}")
    return 0


def _quantize(args) -> int:
    from controller.quantize_command import quantize_version
    result = quantize_version(args.mlflow_uri, args.model, args.version, args.backend, args.workdir,
                              calibration=args.calibration)
    print(json.dumps(result, indent=2))
    return 0 if result["gate"]["passed"] else EXIT_ERROR


def _build_tiny(args) -> int:
    from pathlib import Path
    from quantize.tiny_model import build_tiny_llama
    out = build_tiny_llama(Path(args.out), train_steps=args.steps,
                           init_from=Path(args.init_from) if args.init_from else None)
    print(out)
    return 0


def _demo(args) -> int:
    from controller.demo.run import run_demo
    return run_demo(args.scenario, as_json=args.json, workdir=args.workdir)


if __name__ == "__main__":
    sys.exit(main())
