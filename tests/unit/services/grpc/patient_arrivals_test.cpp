// The parts of an AcceptPatient transfer are gathered in order, checked,
// bounded, and handed over whole with the last part.

#include "services/grpc/patient_move.hpp"

#include <gtest/gtest.h>

using namespace healthtwin;
using services::patient_arrivals;

namespace {

v1::AcceptPatientRequest part(uint32_t n, bool last, std::vector<std::pair<uint32_t, std::string>> records,
                              const std::string& name = "tenants/h1/patients/p1") {
  v1::AcceptPatientRequest r;
  r.mutable_patient()->set_name(name);
  r.set_part(n);
  r.set_last(last);
  for (auto& [kind, key] : records) {
    auto* x = r.add_records();
    x->set_kind(kind);
    x->set_key(key);
    x->set_value("v");
  }
  return r;
}

}  // namespace

TEST(patient_arrivals, parts_in_order_are_handed_over_whole_with_the_last) {
  patient_arrivals arrivals;
  std::optional<std::vector<storage::patient_entry>> complete;
  ASSERT_TRUE(arrivals.add(part(0, false, {{1, ""}, {2, "chunk"}}), complete).ok());
  EXPECT_FALSE(complete);
  ASSERT_TRUE(arrivals.add(part(1, true, {{3, "7"}}), complete).ok());
  ASSERT_TRUE(complete);
  ASSERT_EQ(complete->size(), 3u);
  EXPECT_EQ((*complete)[2].what, storage::patient_entry::kind::alert);
  EXPECT_EQ((*complete)[2].key, "7");
  // Gone once handed over: a later part 1 has nothing to continue.
  complete.reset();
  auto st = arrivals.add(part(1, true, {}), complete);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("must be 0"), std::string::npos) << st.error_message();
}

TEST(patient_arrivals, a_part_out_of_order_or_a_bad_record_is_refused_naming_the_field) {
  patient_arrivals arrivals;
  std::optional<std::vector<storage::patient_entry>> complete;
  ASSERT_TRUE(arrivals.add(part(0, false, {{1, ""}}), complete).ok());
  auto st = arrivals.add(part(2, true, {}), complete);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("must be 1"), std::string::npos) << st.error_message();
  st = arrivals.add(part(1, false, {{9, "x"}}), complete);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("records[0].kind"), std::string::npos) << st.error_message();
  st = arrivals.add(part(1, false, {{2, std::string(300, 'k')}}), complete);
  EXPECT_NE(st.error_message().find("records[0].key"), std::string::npos) << st.error_message();
  // Part 0 again starts the transfer over.
  ASSERT_TRUE(arrivals.add(part(0, true, {{1, ""}}), complete).ok());
  ASSERT_TRUE(complete);
  EXPECT_EQ(complete->size(), 1u);
  EXPECT_FALSE(complete->empty());
}

TEST(patient_arrivals, at_most_a_few_patients_arrive_at_once) {
  patient_arrivals arrivals;
  std::optional<std::vector<storage::patient_entry>> complete;
  for (size_t i = 0; i < patient_arrivals::max_transfers; ++i)
    ASSERT_TRUE(arrivals.add(part(0, false, {}, "tenants/h1/patients/p" + std::to_string(i)), complete).ok());
  auto st = arrivals.add(part(0, false, {}, "tenants/h1/patients/one-too-many"), complete);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}
