#pragma once
// FHIR R4 pieces the patient export and the subscription notifications
// both build: instants, the NEWS2 code, and an alert as a Flag (an alert of
// a patient) or a DetectedIssue (a device's own technical alert, which has
// no patient for a Flag's subject).

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "healthtwin/v1/alert.pb.h"

namespace healthtwin::services {

/// A FHIR instant in UTC with milliseconds.
std::string fhir_instant(int64_t ms);

/// SNOMED CT's "NEWS2 total score" as a CodeableConcept.
nlohmann::json news2_code();

/// "Flag" for an alert of a patient, "DetectedIssue" for a device's own.
const char* alert_resource_type(const v1::Alert& a);
/// The resource's id: "alert-{id}".
std::string alert_resource_id(const v1::Alert& a);
/// The alert as that resource (without resourceType and id): identifier,
/// status (inactive/final once resolved), category, text, subject or
/// implicated device, period, and its IEC priority as an extension.
nlohmann::json alert_resource(const v1::Alert& a, const std::string& tenant);

}  // namespace healthtwin::services
