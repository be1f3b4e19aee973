#pragma once

#include <cstdint>
#include <string>

#include "actors/models/patient_model.hpp"

namespace healthtwin::actors {

/// The message of the alert a finding raises or updates: what a clinician
/// reads on the alert list (no patient identifiers: the alert is the
/// patient's own). `model` is the patient's, for the NEWS2 band and the
/// baseline mean; `time_ms` the data time, for forecasts' minutes to go.
std::string describe_finding(const models::finding& f, const models::patient_model& model,
                             int64_t time_ms);

}  // namespace healthtwin::actors
