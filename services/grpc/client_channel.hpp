#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
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
  /// Set: the token is this file's, read again when the file changes (a
  /// rotated Kubernetes Secret); `token`, if set, is its first reading. An
  /// empty or unreadable file is an error of make_channel.
  std::string token_file;
};

/// A channel that sends the token as "authorization: Bearer ..." on every
/// call; empty with `error` set when a file cannot be read.
std::shared_ptr<grpc::Channel> make_channel(const channel_settings& s, std::string& error,
                                            grpc::ChannelArguments args = {});

/// The stamps (read_file.hpp, file_stamp) of the CA, certificate and key
/// files a channel of `s` reads: a long-lived channel is made again when
/// they change, so that rotated certificates are used without a restart.
std::string tls_files_stamp(const channel_settings& s);

/// Reads a token file (surrounding whitespace dropped); empty if unreadable.
std::string read_token_file(const std::string& path);

/// A token file's "Bearer ..." header, read again when the file's
/// modification time changes (looked at most once per `look_every`); while
/// the new file is empty or unreadable, the last good token stays.
/// Thread-safe.
class token_file_header {
public:
  token_file_header(std::string path, std::string first_token,
                    std::chrono::milliseconds look_every = std::chrono::seconds(1));
  std::string header();

private:
  std::string path_;
  std::chrono::milliseconds look_every_;
  std::mutex mtx_;
  std::string header_;
  std::filesystem::file_time_type mtime_{};
  std::chrono::steady_clock::time_point next_look_{};
};

}  // namespace healthtwin::services
