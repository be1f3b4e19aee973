// Validates FHIR R4 JSON files offline with the `fhir` package (structure,
// cardinality, types, required bindings): prints every error and warning
// and exits 1 when any resource has an error.
//   node tests/fhir/validate.mjs bundle.json [more.json ...]
import { readFileSync } from "node:fs";
import fhirPackage from "fhir";

const { Fhir } = fhirPackage;
const fhir = new Fhir();
let failed = false;
for (const file of process.argv.slice(2)) {
  const resource = JSON.parse(readFileSync(file, "utf8"));
  const result = fhir.validate(resource, { errorOnUnexpected: true });
  for (const m of result.messages) {
    if (m.severity === "error" || m.severity === "fatal" || m.severity === "warning")
      console.log(`${file}: ${m.severity}: ${m.location}: ${m.message}`);
  }
  if (!result.valid) failed = true;
  console.log(`${file}: ${result.valid ? "valid" : "INVALID"} (${resource.resourceType}, ${(resource.entry || []).length} entries)`);
}
process.exit(failed ? 1 : 0);
