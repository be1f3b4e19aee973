#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "services/grpc/client_channel.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/token_signer.hpp"

namespace healthtwin::testing {

/// A free TCP port on 127.0.0.1 (bound once, then released) for a server
/// started later. It lies below the kernel's ephemeral range, so that no
/// outgoing connection (a test's clients, a node's probes) takes it as its
/// source port meanwhile: a port taken so made a member started seconds
/// after its port was chosen fail with "Address already in use".
inline uint16_t free_port() {
  unsigned low = 32768;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    unsigned hi = 0;
    if (std::fscanf(f, "%u %u", &low, &hi) != 2)
      low = 32768;
    std::fclose(f);
  }
  static std::mt19937 pick{std::random_device{}()};
  auto try_bind = [](uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ok ? ntohs(addr.sin_port) : uint16_t{0};
  };
  if (low > 11000)
    for (int attempt = 0; attempt < 200; ++attempt)
      if (auto port = try_bind(static_cast<uint16_t>(10000 + pick() % (low - 10000))))
        return port;
  return try_bind(0);  // no room below the ephemeral range: any free port
}

/// Runs a child process with stdout+stderr sent to a file; stops it by PID.
class child_process {
public:
  child_process(const std::vector<std::string>& argv, const std::string& log_path) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> args;
      for (auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~child_process() { kill(SIGKILL); }

  pid_t pid() const { return pid_; }
  bool running() {
    if (pid_ <= 0)
      return false;
    int status = 0;
    auto r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_status_ = status;
      pid_ = -1;
      return false;
    }
    return true;
  }

  /// Sends `sig` and waits up to `timeout` for the exit; returns the wait
  /// status (-1 if it had to be killed).
  int kill(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    if (pid_ <= 0)
      return exit_status_;
    ::kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!running())
        return exit_status_;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return -1;
  }

  /// Waits for a normal exit.
  int wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!running())
        return exit_status_;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return kill(SIGKILL);
  }

private:
  pid_t pid_ = -1;
  int exit_status_ = 0;
};

/// Runs a shell command; its stdout and stderr.
inline std::string run_command(const std::string& cmd) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> p{::popen((cmd + " 2>&1").c_str(), "r"), ::pclose};
  char buf[512];
  while (p && std::fgets(buf, sizeof buf, p.get()))
    out += buf;
  return out;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in{p};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The roles test clients get by default: everything but a device.
inline const std::vector<std::string>& all_user_roles() {
  static const std::vector<std::string> roles{"service", "clinician", "ops-admin", "sre"};
  return roles;
}

/// A real `healthtwin` process on 127.0.0.1 with its data in `data_dir`,
/// serving TLS with a test CA's certificate and accepting ES256 tokens of a
/// test key (both kept in `data_dir`, so a restart keeps them). Extra
/// arguments that set TLS or token options replace these defaults.
class node_process {
public:
  node_process(std::filesystem::path data_dir, std::vector<std::string> extra = {},
               uint16_t grpc_port = 0, uint16_t http_port = 0,
               std::vector<std::string> launcher = {})
      : dir_(std::move(data_dir)), pki_(dir_ / "pki") {
    std::filesystem::create_directories(dir_);
    port_file_ = dir_ / "ports.json";
    std::filesystem::remove(port_file_);
    auto key_path = dir_ / "pki" / "token-signing.key";
    if (std::filesystem::exists(key_path)) {
      signer_ = signing_key::from_private_pem("ES256", read_file(key_path));
    } else {
      signer_ = signing_key::es256();
      write_text(key_path, signer_->private_pem);
    }
    write_text(dir_ / "pki" / "token-signing.pub", signer_->public_pem);
    std::vector<std::string> argv{HEALTHTWIN_NODE_BINARY,
                                  "--http-listen=127.0.0.1:" + std::to_string(http_port),
                                  "--data-dir=" + (dir_ / "db").string(),
                                  "--port-file=" + port_file_.string()};
    auto mentions = [&](const std::string& prefix) {
      for (auto& e : extra)
        if (e.rfind(prefix, 0) == 0)
          return true;
      return false;
    };
    if (!mentions("--grpc-listen="))  // else: inside a network namespace of its own
      argv.push_back("--grpc-listen=127.0.0.1:" + std::to_string(grpc_port));
    if (!mentions("--shards="))
      argv.push_back("--shards=64");
    if (!mentions("--node-name="))
      argv.push_back("--node-name=test-node");
    plaintext_ = mentions("--insecure-plaintext");
    if (!plaintext_ && !mentions("--tls-"))
      for (auto& a : {"--tls-cert-file=" + pki_.node_cert.string(),
                      "--tls-key-file=" + pki_.node_key.string()})
        argv.push_back(a);
    if (!mentions("--auth-"))
      argv.push_back("--auth-public-key-file=" + (dir_ / "pki" / "token-signing.pub").string());
    argv.insert(argv.end(), extra.begin(), extra.end());
    // A launcher that execs the node (`ip netns exec NS`) keeps its PID.
    argv.insert(argv.begin(), launcher.begin(), launcher.end());
    proc_ = std::make_unique<child_process>(argv, (dir_ / "node.log").string());
    grpc_port_ = grpc_port;  // known before ready when fixed
    http_port_ = http_port;
  }

  /// Waits until the node wrote its port file (it is then ready).
  bool wait_ready(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::filesystem::exists(port_file_)) {
        std::smatch m;
        auto text = read_file(port_file_);
        static const std::regex re{R"(\"grpc\":(\d+),\"http\":(\d+))"};
        if (std::regex_search(text, m, re)) {
          grpc_port_ = static_cast<uint16_t>(std::stoi(m[1]));
          http_port_ = static_cast<uint16_t>(std::stoi(m[2]));
          return true;
        }
      }
      if (!proc_->running())
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  /// A token for `roles` in `tenant`, signed with the node's trusted key.
  std::string token(const std::string& tenant = "h1",
                    const std::vector<std::string>& roles = all_user_roles(),
                    const std::string& subject = "test-client", const std::string& device = {}) const {
    return signer_->sign(token_claims(subject, tenant, roles, device));
  }

  /// A channel over TLS (trusting the test CA) sending `bearer`.
  std::shared_ptr<grpc::Channel> channel_with(const std::string& bearer, bool client_cert = false) const {
    services::channel_settings s;
    s.target = target();
    s.token = bearer;
    s.plaintext = plaintext_;
    s.ca_file = pki_.ca_cert.string();
    if (client_cert) {
      s.cert_file = pki_.client_cert.string();
      s.key_file = pki_.client_key.string();
    }
    std::string error;
    auto ch = services::make_channel(s, error);
    EXPECT_TRUE(ch) << error;
    return ch;
  }

  /// A channel for a client with every role but device in `tenant`.
  std::shared_ptr<grpc::Channel> channel(const std::string& tenant = "h1") const {
    return channel_with(token(tenant));
  }

  /// Arguments for twinsim to reach this node with `bearer_file`.
  std::vector<std::string> client_args(const std::filesystem::path& bearer_file) const {
    std::vector<std::string> a{"--target=" + target(), "--token-file=" + bearer_file.string()};
    if (plaintext_)
      a.push_back("--plaintext");
    else
      a.push_back("--tls-ca-file=" + pki_.ca_cert.string());
    return a;
  }

  /// A curl command line for GET `path` on the HTTP(S) listener, trusting
  /// the test CA; `extra` goes before the URL.
  std::string curl(const std::string& path, const std::string& extra = "") const {
    auto scheme = plaintext_ ? "http" : "https";
    return "curl -s --cacert " + pki_.ca_cert.string() + " " + extra + " " + scheme + "://127.0.0.1:" +
           std::to_string(http_port_) + path;
  }

  /// The value of an unlabelled Prometheus metric on /metrics; -1 when absent.
  double metric(const std::string& name) const {
    auto cmd = curl("/metrics");
    std::unique_ptr<FILE, int (*)(FILE*)> p{::popen(cmd.c_str(), "r"), ::pclose};
    char line[512];
    while (p && std::fgets(line, sizeof line, p.get()))
      if (std::strncmp(line, name.c_str(), name.size()) == 0 && line[name.size()] == ' ')
        return std::atof(line + name.size() + 1);
    return -1;
  }

  const test_pki& pki() const { return pki_; }
  const signing_key& signer() const { return *signer_; }

  std::string target() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  uint16_t grpc_port() const { return grpc_port_; }
  uint16_t http_port() const { return http_port_; }
  std::string log() const { return read_file(dir_ / "node.log"); }
  child_process& process() { return *proc_; }

  /// SIGTERM and wait; returns the wait status.
  int stop() { return proc_->kill(SIGTERM); }
  /// SIGKILL: a crash.
  void crash() { proc_->kill(SIGKILL); }

private:
  std::filesystem::path dir_;
  test_pki pki_;
  std::unique_ptr<signing_key> signer_;
  bool plaintext_ = false;
  std::filesystem::path port_file_;
  std::unique_ptr<child_process> proc_;
  uint16_t grpc_port_ = 0;
  uint16_t http_port_ = 0;
};

/// The sample of `name` whose labels include every one of `labels`
/// (`key="value"` strings) on the node's /metrics; -1 when absent.
inline double labelled_metric(const node_process& node, const std::string& name,
                              const std::vector<std::string>& labels) {
  std::istringstream text{run_command(node.curl("/metrics"))};
  std::string line;
  while (std::getline(text, line)) {
    if (line.rfind(name + "{", 0) != 0)
      continue;
    auto close = line.find('}');
    auto set = line.substr(name.size() + 1, close - name.size() - 1);
    if (std::all_of(labels.begin(), labels.end(),
                    [&](const std::string& l) { return set.find(l) != std::string::npos; }))
      return std::atof(line.c_str() + close + 2);
  }
  return -1;
}

}  // namespace healthtwin::testing
