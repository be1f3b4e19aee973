#include "services/grpc/client_channel.hpp"

#include <vector>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include "services/grpc/read_file.hpp"

namespace healthtwin::services {

namespace {

namespace exp = grpc::experimental;

// Adds the bearer token to every call's initial metadata. (gRPC's own call
// credentials refuse plaintext channels, which development nodes use.)
class bearer_interceptor final : public exp::Interceptor {
public:
  explicit bearer_interceptor(std::string header) : header_(std::move(header)) {}
  void Intercept(exp::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(exp::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA))
      methods->GetSendInitialMetadata()->insert({"authorization", header_});
    methods->Proceed();
  }

private:
  std::string header_;
};

class bearer_factory final : public exp::ClientInterceptorFactoryInterface {
public:
  explicit bearer_factory(std::string token) : header_("Bearer " + std::move(token)) {}
  explicit bearer_factory(std::shared_ptr<token_file_header> file) : file_(std::move(file)) {}
  exp::Interceptor* CreateClientInterceptor(exp::ClientRpcInfo*) override {
    return new bearer_interceptor(file_ ? file_->header() : header_);
  }

private:
  std::string header_;
  std::shared_ptr<token_file_header> file_;  // lives as long as the channel
};

}  // namespace

std::string read_token_file(const std::string& path) {
  auto text = read_file(path);
  if (!text)
    return {};
  auto& t = *text;
  auto first = t.find_first_not_of(" \t\r\n"), last = t.find_last_not_of(" \t\r\n");
  return first == std::string::npos ? std::string{} : t.substr(first, last - first + 1);
}

token_file_header::token_file_header(std::string path, std::string first_token, std::chrono::milliseconds look_every)
    : path_(std::move(path)), look_every_(look_every), header_("Bearer " + std::move(first_token)) {
  std::error_code ec;
  mtime_ = std::filesystem::last_write_time(path_, ec);
}

std::string token_file_header::header() {
  std::lock_guard lk{mtx_};
  auto now = std::chrono::steady_clock::now();
  if (now >= next_look_) {
    next_look_ = now + look_every_;
    std::error_code ec;
    auto mtime = std::filesystem::last_write_time(path_, ec);
    if (!ec && mtime != mtime_) {
      auto token = read_token_file(path_);
      if (!token.empty()) {
        header_ = "Bearer " + token;
        mtime_ = mtime;
      }
    }
  }
  return header_;
}

std::string tls_files_stamp(const channel_settings& s) {
  if (s.plaintext)
    return {};
  return file_stamps({s.ca_file, s.cert_file, s.key_file});
}

std::shared_ptr<grpc::Channel> make_channel(const channel_settings& s, std::string& error,
                                            grpc::ChannelArguments args) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (s.plaintext) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions opts;
    if (!s.ca_file.empty()) {
      auto ca = read_file(s.ca_file);
      if (!ca) {
        error = "cannot read the CA file " + s.ca_file;
        return nullptr;
      }
      opts.pem_root_certs = *ca;
    }
    if (!s.cert_file.empty()) {
      auto cert = read_file(s.cert_file), key = read_file(s.key_file);
      if (!cert || !key) {
        error = "cannot read the client certificate or key";
        return nullptr;
      }
      opts.pem_cert_chain = *cert;
      opts.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(opts);
    if (!s.server_name.empty())
      args.SetSslTargetNameOverride(s.server_name);
  }
  std::vector<std::unique_ptr<exp::ClientInterceptorFactoryInterface>> interceptors;
  if (!s.token_file.empty()) {
    auto token = s.token.empty() ? read_token_file(s.token_file) : s.token;
    if (token.empty()) {
      error = "the token file " + s.token_file + " is empty or unreadable";
      return nullptr;
    }
    interceptors.push_back(
        std::make_unique<bearer_factory>(std::make_shared<token_file_header>(s.token_file, std::move(token))));
  } else if (!s.token.empty())
    interceptors.push_back(std::make_unique<bearer_factory>(s.token));
  return exp::CreateCustomChannelWithInterceptors(s.target, creds, args, std::move(interceptors));
}

}  // namespace healthtwin::services
