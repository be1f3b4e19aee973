#pragma once
// Test-only: three members' replication tunnels on 127.0.0.1 with the test
// PKI, for tests of Raft groups in one process.

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "services/peer/raft_tunnels.hpp"
#include "tests/support/test_pki.hpp"

namespace healthtwin::testing {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in{p, std::ios::binary};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds within) {
  auto until = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < until) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

/// Members n1, n2, n3, each with its tunnels listening on a free port.
struct three_tunnels {
  services::tunnel_credentials tls;
  std::vector<std::unique_ptr<services::raft_tunnels>> tunnels;
  std::vector<services::raft_peer> peers;

  explicit three_tunnels(const std::filesystem::path& pki_dir) {
    test_pki pki{pki_dir};
    tls = {slurp(pki.node_cert), slurp(pki.node_key), slurp(pki.ca_cert)};
    for (int i = 0; i < 3; ++i) {
      std::string why;
      auto t = services::raft_tunnels::open("n" + std::to_string(i + 1), "127.0.0.1:0", tls, why);
      if (!t)
        throw std::runtime_error(why);
      peers.push_back({t->self(), "127.0.0.1:" + std::to_string(t->port())});
      tunnels.push_back(std::move(t));
    }
  }
};

}  // namespace healthtwin::testing
