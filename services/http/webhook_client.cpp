#include "services/http/webhook_client.hpp"

#include <memory>
#include <mutex>

#include <curl/curl.h>

namespace healthtwin::services {

namespace {

constexpr size_t max_answer_bytes = 64 * 1024;

size_t drop_answer(char*, size_t size, size_t n, void* seen) {
  auto& total = *static_cast<size_t*>(seen);
  total += size * n;
  return total > max_answer_bytes ? 0 : size * n;  // 0 aborts an oversized answer
}

int check_abort(void* flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(flag)->load() ? 1 : 0;
}

}  // namespace

void webhook_global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

webhook_result post_webhook(const webhook_post& p, const std::atomic<bool>& abort) {
  webhook_result r;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl{curl_easy_init(), curl_easy_cleanup};
  if (!curl) {
    r.error = "cannot create an HTTP client";
    return r;
  }
  curl_slist* list = nullptr;
  list = curl_slist_append(list, ("Content-Type: " + p.content_type).c_str());
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
  for (auto& h : p.headers)
    list = curl_slist_append(list, h.c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers{list, curl_slist_free_all};
  size_t answered = 0;
  char error[CURL_ERROR_SIZE] = {};
  auto* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, p.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!p.ca_file.empty())
    curl_easy_setopt(c, CURLOPT_CAINFO, p.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, p.body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(p.body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(p.timeout.count() * 1000));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(p.timeout.count() * 1000));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, drop_answer);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answered);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, check_abort);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(&abort));
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "HealthTwin-FHIR-subscriptions");
  auto rc = curl_easy_perform(c);
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && answered > max_answer_bytes)) {
    r.error = error[0] ? error : curl_easy_strerror(rc);
    return r;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.http_status);
  if (!r.accepted())
    r.error = "the endpoint answered HTTP " + std::to_string(r.http_status);
  return r;
}

}  // namespace healthtwin::services
