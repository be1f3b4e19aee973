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
  explicit bearer_interceptor(const std::string& header) : header_(header) {}
  void Intercept(exp::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(exp::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA))
      methods->GetSendInitialMetadata()->insert({"authorization", header_});
    methods->Proceed();
  }

private:
  const std::string& header_;
};

class bearer_factory final : public exp::ClientInterceptorFactoryInterface {
public:
  explicit bearer_factory(std::string token) : header_("Bearer " + std::move(token)) {}
  exp::Interceptor* CreateClientInterceptor(exp::ClientRpcInfo*) override {
    return new bearer_interceptor(header_);
  }

private:
  std::string header_;  // lives as long as the channel
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
  if (!s.token.empty())
    interceptors.push_back(std::make_unique<bearer_factory>(s.token));
  return exp::CreateCustomChannelWithInterceptors(s.target, creds, args, std::move(interceptors));
}

}  // namespace healthtwin::services
