"""`relctl k8s render`: print every object relctl would apply for a version, as YAML;
`relctl k8s tenants`: every tenant's Namespace, ServiceAccount, Role and RoleBinding (and the
ReferenceGrant its routes need with mirror_mode request-mirror or off).

For review by a platform team or for GitOps; nothing is sent to a cluster.
"""
from __future__ import annotations

import argparse
import sys

import yaml

from controller.k8s import render, tenants as k8s_tenants
from policies.kubernetes import policy_section
from controller.k8s.settings import KubernetesSettings
from controller.traffic.base import Backend, RouteSpec


def add_parser(sub) -> None:
    """Register `k8s` on the relctl command's sub-parsers (controller/cli.py)."""
    k8s = sub.add_parser("k8s", help="Kubernetes manifests for a model version")
    ksub = k8s.add_subparsers(dest="k8s_command", required=True)
    r = ksub.add_parser("render", help="print the objects relctl would apply for a version (YAML)")
    r.add_argument("--policy", default=None, help="built-in policy name or YAML file (default: default)")
    r.add_argument("--model", required=True)
    r.add_argument("--version", required=True)
    r.add_argument("--stable", default=None, metavar="VERSION",
                   help="render the HTTPRoute as a canary beside this stable version")
    r.add_argument("--weight", type=float, default=None, help="candidate percent with --stable (default 0)")
    r.add_argument("--config", default=None, help="settings YAML; its `kubernetes:` section is used")
    r.set_defaults(func=run_render)
    t = ksub.add_parser("tenants", help="print every tenant's Namespace, ServiceAccount, Role, RoleBinding "
                        "(and ReferenceGrant, with mirror_mode request-mirror or off)")
    t.add_argument("--config", default=None, help="settings YAML; its `tenants:` and `kubernetes:` sections are used")
    t.set_defaults(func=run_tenants)


def run_render(args) -> int:
    from controller.cli import CliError
    try:
        print(render_yaml(args), end="")
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    return 0


def render_yaml(args) -> str:
    """A tenant's model: its tenant's objects first, then the version's in the tenant's namespace."""
    from controller.tenants import tenant_of
    from policies.loader import load_policy
    k, mlflow_uri, tenants = _settings(args.config)
    section = policy_section(load_policy(args.policy))
    tenant = tenant_of(tenants, args.model)
    objs = k8s_tenants.tenant_objects(k, tenant, tenants[tenant]) if tenant else []
    objs += render.version_objects(k8s_tenants.for_model(k, tenants, args.model), args.model, args.version,
                                   section, mlflow_uri)
    objs.append(_route(k, args, k8s_tenants.for_model(k, tenants, args.model).namespace))
    return yaml.safe_dump_all(objs, sort_keys=False)


def run_tenants(args) -> int:
    from controller.cli import CliError
    try:
        k, _, tenants = _settings(args.config)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    if not tenants:
        raise CliError("no tenants configured: add a `tenants:` section to the settings")
    print(yaml.safe_dump_all(k8s_tenants.all_tenant_objects(k, tenants), sort_keys=False), end="")
    return 0


def _route(k: KubernetesSettings, args, namespace: str) -> dict:
    """The model's HTTPRoute (in the controller's namespace) to the versions in `namespace`."""
    from controller.k8s.routes import http_route
    if args.weight is not None and not 0 <= args.weight <= 100:
        raise ValueError(f"--weight must be a percent in [0, 100], got {args.weight:g}")
    served = k.model_copy(update={"namespace": namespace})
    candidate = Backend("candidate", render.service_url(served, args.model, args.version), str(args.version))
    if not args.stable:
        spec = RouteSpec(args.model, (candidate,), {"candidate": 100.0})
    else:
        w = args.weight or 0.0
        stable = Backend("stable", render.service_url(served, args.model, args.stable), str(args.stable))
        spec = RouteSpec(args.model, (stable, candidate), {"stable": 100.0 - w, "candidate": w})
    return http_route(k, spec, backend_namespace=namespace)


def _settings(path: str | None) -> tuple[KubernetesSettings, str, dict]:
    """The `kubernetes:` settings, MLflow's URI as pods see it, and the tenants."""
    from controller.config import load_settings
    settings = load_settings(path)
    k = settings.kubernetes
    return k, k.mlflow_uri or settings.mlflow_uri, settings.tenants


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (python -m controller.k8s.cli render …) until relctl registers `k8s`."""
    p = argparse.ArgumentParser(prog="relctl")
    add_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["k8s", *(sys.argv[1:] if argv is None else argv)])
    from controller.cli import CliError
    try:
        return args.func(args)
    except CliError as exc:
        print(f"relctl: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
