#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

namespace healthtwin::testing {

/// A free TCP port on 127.0.0.1 (bound once, then released).
inline uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
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

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in{p};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A real `healthtwin` process on 127.0.0.1 with its data in `data_dir`.
class node_process {
public:
  node_process(std::filesystem::path data_dir, std::vector<std::string> extra = {},
               uint16_t grpc_port = 0, uint16_t http_port = 0)
      : dir_(std::move(data_dir)) {
    std::filesystem::create_directories(dir_);
    port_file_ = dir_ / "ports.json";
    std::filesystem::remove(port_file_);
    std::vector<std::string> argv{HEALTHTWIN_NODE_BINARY,
                                  "--grpc-listen=127.0.0.1:" + std::to_string(grpc_port),
                                  "--http-listen=127.0.0.1:" + std::to_string(http_port),
                                  "--data-dir=" + (dir_ / "db").string(),
                                  "--port-file=" + port_file_.string(),
                                  "--shards=64",
                                  "--node-name=test-node"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc_ = std::make_unique<child_process>(argv, (dir_ / "node.log").string());
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

  std::shared_ptr<grpc::Channel> channel() const {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(grpc_port_),
                               grpc::InsecureChannelCredentials());
  }

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
  std::filesystem::path port_file_;
  std::unique_ptr<child_process> proc_;
  uint16_t grpc_port_ = 0;
  uint16_t http_port_ = 0;
};

}  // namespace healthtwin::testing
