#pragma once

#include <optional>
#include <string>

#include "actors/models/patient_model.hpp"

namespace healthtwin::internal {
class PatientSettings;
}

namespace healthtwin::actors {

/// Converts clinician settings to their persisted (and logged) form.
void to_record(const models::patient_settings& s, internal::PatientSettings& out);

/// Reads persisted settings; an unset number keeps its default. Returns the
/// name of the first invalid field (the settings are then left unchanged).
std::optional<std::string> from_record(const internal::PatientSettings& r,
                                       models::patient_settings& out);

}  // namespace healthtwin::actors
