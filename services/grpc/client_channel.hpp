#pragma once

#include <memory>
#include <string>

#include <grpcpp/channel.h>
#include <grpcpp/support/channel_arguments.h>

namespace healthtwin::services {

/// How a client (twinsim, twinctl, tests) reaches a node.
struct channel_settings {
  std::string target;       ///< host:port
  std::string token;        ///< bearer token sent with every call
  bool plaintext = false;   ///< no TLS (a node started with --insecure-plaintext)
  std::string ca_file;      ///< PEM CA that signed the node's certificate (empty: system roots)
  std::string cert_file;    ///< client certificate, for nodes that require mTLS
  std::string key_file;     ///< its private key
  std::string server_name;  ///< name to check the node's certificate against (default: target host)
};

/// A channel that sends `token` as "authorization: Bearer ..." on every
/// call; empty with `error` set when a file cannot be read.
std::shared_ptr<grpc::Channel> make_channel(const channel_settings& s, std::string& error,
                                            grpc::ChannelArguments args = {});

/// Reads a token file (surrounding whitespace dropped); empty if unreadable.
std::string read_token_file(const std::string& path);

}  // namespace healthtwin::services
