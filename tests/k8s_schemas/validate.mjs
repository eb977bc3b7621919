// Validates Kubernetes custom resources against the upstream projects' OpenAPI schemas as the
// kubernetes-models packages publish them on npm (validators compiled from the schemas that the
// projects generate from their Go API types; see package.json for the versions).
// stdin: a JSON array of objects. stdout: a JSON array, per object null (valid) or the errors.
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import { ReferenceGrant } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1beta1/ReferenceGrant";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const MODELS = new Map([HTTPRoute, ReferenceGrant, ScaledObject, ServiceMonitor]
  .map((Model) => { const m = new Model({ metadata: {} }); return [`${m.apiVersion} ${m.kind}`, Model]; }));

function check(obj) {
  const Model = MODELS.get(`${obj.apiVersion} ${obj.kind}`);
  if (!Model) return `no published schema here for ${obj.apiVersion} ${obj.kind}`;
  try {
    new Model(obj).validate();
    return null;
  } catch (e) {
    return e.message;
  }
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
process.stdout.write(JSON.stringify(JSON.parse(input).map(check)));
