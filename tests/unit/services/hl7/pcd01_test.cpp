#include <gtest/gtest.h>

#include "services/hl7/pcd01.hpp"

using namespace healthtwin::hl7;
using healthtwin::models::metric;
using healthtwin::models::reading_quality;

namespace {

// An ORU^R01 per IHE PCD-01: the MDS row carries the device (OBX-18), the
// metric rows below it inherit it.
std::string pcd01(const std::string& obx_rows, const std::string& obr_time = "20261206101500+0000") {
  return "MSH|^~\\&|GW^0123^EUI-64|ICU||HT|20261206101502+0000||ORU^R01^ORU_R01|MSG-1|P|2.6|||NE|AL||8859/1|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r"
         "PID|||P123^^^Hosp^PI||Doe^John\r"
         "PV1||I|ICU^1^3\r"
         "OBR|1||MSG-1^GW|182777000^monitoring of patient^SCT|||" + obr_time + "\r" + obx_rows;
}

const std::string mds = "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||Mon-7^^0123456789ABCDEF^EUI-64\r";

pcd01_content read_ok(const std::string& text) {
  error why;
  auto m = message::parse(text, why);
  EXPECT_TRUE(m) << why.what;
  auto c = read_pcd01(*m, why);
  EXPECT_TRUE(c) << why.where.to_string() << ": " << why.what;
  return c ? *c : pcd01_content{};
}

std::string read_error(const std::string& text) {
  error why;
  auto m = message::parse(text, why);
  EXPECT_TRUE(m) << why.what;
  auto c = read_pcd01(*m, why);
  EXPECT_FALSE(c);
  return why.where.to_string() + ": " + why.what;
}

}  // namespace

TEST(pcd01, maps_mdc_codes_and_units_to_metrics_with_the_device_of_the_mds_row) {
  auto c = read_ok(pcd01(mds +
                         "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|50-120||||F\r"
                         "OBX|3|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||F\r"
                         "OBX|4|NM|151562^MDC_RESP_RATE^MDC|1.3.1.1|16|264928^MDC_DIM_RESP_PER_MIN^MDC|||||F\r"
                         "OBX|5|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.4.1.1|120|266016^MDC_DIM_MMHG^MDC|||||F|||20261206100900+0000\r"
                         "OBX|6|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.4.1.2|80|mm[Hg]^mm[Hg]^UCUM|||||F|||20261206100900+0000\r"
                         "OBX|7|NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC|1.4.1.3|93|266016^MDC_DIM_MMHG^MDC|||||F\r"
                         "OBX|8|NM|150364^MDC_TEMP_BODY^MDC|1.5.1.1|98.6|[degF]^[degF]^UCUM|||||F\r"));
  ASSERT_EQ(c.observations.size(), 7u);
  EXPECT_EQ(c.not_mapped, 0u);
  for (auto& o : c.observations)
    EXPECT_EQ(o.device, "mon-7");  // OBX-18.1, lower-cased
  EXPECT_EQ(c.observations[0].metric, metric::heart_rate);
  EXPECT_EQ(c.observations[0].value, 72);
  EXPECT_EQ(c.observations[0].quality, reading_quality::valid);
  EXPECT_EQ(c.observations[0].time_ms, 1796552100000);  // OBR-7
  EXPECT_EQ(c.observations[0].where.to_string(), "OBX[2]-5");
  EXPECT_EQ(c.observations[1].metric, metric::spo2);
  EXPECT_EQ(c.observations[2].metric, metric::respiration_rate);
  EXPECT_EQ(c.observations[3].metric, metric::systolic_bp);
  EXPECT_EQ(c.observations[3].time_ms, 1796552100000 - 6 * 60'000);  // OBX-14, the cuff's own time
  EXPECT_EQ(c.observations[4].metric, metric::diastolic_bp);
  EXPECT_EQ(c.observations[5].metric, metric::mean_arterial_pressure);  // the cuff's mean, in mmHg
  EXPECT_EQ(c.observations[5].value, 93);
  EXPECT_EQ(c.observations[6].metric, metric::temperature);
  EXPECT_NEAR(c.observations[6].value, 37.0, 1e-9);
}

TEST(pcd01, result_status_sets_the_reading_quality) {
  auto c = read_ok(pcd01(mds +
                         "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1||264864^MDC_DIM_BEAT_PER_MIN^MDC|||||X\r"
                         "OBX|3|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|97|%|||||R\r"
                         "OBX|4|NM|151562^MDC_RESP_RATE^MDC|1.3.1.1|3|/min|||||W\r"
                         "OBX|5|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.4.1.1|0|mm[Hg]|||||F\r"));
  ASSERT_EQ(c.observations.size(), 4u);
  EXPECT_EQ(c.observations[0].quality, reading_quality::no_signal);
  EXPECT_EQ(c.observations[1].quality, reading_quality::unvalidated);
  EXPECT_EQ(c.observations[2].quality, reading_quality::invalid);
  EXPECT_EQ(c.observations[3].quality, reading_quality::valid);  // F: a real 0 as sent
}

TEST(pcd01, a_pulse_rate_is_the_heart_rate_only_without_an_ecg_one) {
  auto with_ecg = read_ok(pcd01(mds +
                                "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|/min|||||F\r"
                                "OBX|3|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.2.1.2|75|/min|||||F\r"));
  ASSERT_EQ(with_ecg.observations.size(), 1u);
  EXPECT_EQ(with_ecg.observations[0].value, 72);
  auto alone = read_ok(pcd01(mds + "OBX|2|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.2.1.2|75|/min|||||F\r"));
  ASSERT_EQ(alone.observations.size(), 1u);
  EXPECT_EQ(alone.observations[0].metric, metric::heart_rate);
  EXPECT_EQ(alone.observations[0].value, 75);
}

TEST(pcd01, an_observation_we_would_chart_that_is_malformed_refuses_the_message_naming_it) {
  EXPECT_EQ(read_error(pcd01(mds + "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|7x2|/min|||||F\r")),
            "OBX[2]-5: OBX-5: MDC_ECG_HEART_RATE must be a number, was '7x2'");
  EXPECT_NE(read_error(pcd01(mds + "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|mg|||||F\r")).find("OBX[2]-6"),
            std::string::npos);
  EXPECT_NE(read_error(pcd01(mds + "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|/min|||||Q\r")).find("OBX[2]-11"),
            std::string::npos);
  EXPECT_NE(read_error(pcd01(mds + "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1||/min|||||F\r")).find("OBX[2]-5"),
            std::string::npos);
  EXPECT_NE(read_error(pcd01(mds + "OBX|2|ST|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|/min|||||F\r")).find("OBX[2]-2"),
            std::string::npos);
  EXPECT_NE(read_error(pcd01(mds + "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|/min|||||F|||2026\r")).find("OBX[2]-14"),
            std::string::npos);
  // No device: neither on the row nor above it.
  EXPECT_NE(read_error(pcd01("OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|/min|||||F\r")).find("OBX-18"),
            std::string::npos);
  EXPECT_NE(read_error(pcd01("OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|72|/min|||||F|||||||bed 3!\r")).find("OBX-18"),
            std::string::npos);
  EXPECT_NE(read_error(pcd01(mds, "yesterday")).find("OBR-7"), std::string::npos);
}

TEST(pcd01, codes_we_do_not_chart_are_counted_not_refused) {
  auto c = read_ok(pcd01(mds + "OBX|2|NM|151708^MDC_CONC_AWAY_CO2_ET^MDC|1.6.1.1|38|266016^MDC_DIM_MMHG^MDC|||||F\r"
                               "OBX|3|ST|0002-4182^HR^MDIL|1|seventy|||||F\r"));
  EXPECT_TRUE(c.observations.empty());
  EXPECT_EQ(c.not_mapped, 1u);
}
