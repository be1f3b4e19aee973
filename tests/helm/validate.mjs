// Validates every object of rendered manifests (multi-document YAML, files
// given as arguments) against the Kubernetes API schemas of kubernetes-models
// and the Prometheus Operator's (ServiceMonitor, PrometheusRule), offline.
// Prints one line per object; exits 1 if any object is invalid or of a kind
// it has no schema for.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const groups = {
  "v1": "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "networking.k8s.io/v1": "kubernetes-models/networking.k8s.io/v1",
  "batch/v1": "kubernetes-models/batch/v1",
  "rbac.authorization.k8s.io/v1": "kubernetes-models/rbac.authorization.k8s.io/v1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

let failed = 0;
let count = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.log(`${file}: YAML error: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (!obj) continue;
    const what = `${obj.apiVersion} ${obj.kind} ${obj.metadata?.name}`;
    const module = groups[obj.apiVersion];
    let Model;
    if (module) Model = (await import(module))[obj.kind];
    if (!Model) {
      console.log(`${file}: ${what}: no schema for this kind`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`valid: ${what}`);
      count++;
    } catch (e) {
      console.log(`${file}: ${what}: INVALID: ${e.message}`);
      failed++;
    }
  }
}
console.log(`${count} objects valid, ${failed} invalid`);
process.exit(failed || count === 0 ? 1 : 0);
