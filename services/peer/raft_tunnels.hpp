#pragma once
// Mutual-TLS tunnels for the Raft groups' traffic (docs/adr/0037). C-Raft's
// libuv transport speaks plain TCP; readings are PHI, so a member instead
// listens on one TLS port for every group it belongs to, and raft reads and
// writes a local socket pair whose other end this pumps through TLS.
//
// A connection: the dialler's TLS handshake (both sides present a
// certificate of the cluster CA), then its preamble — "HTR1", the group id
// (8 bytes, little endian), the length of its member name (2 bytes) and the
// name. The listener accepts it only for a group it serves, from a member
// of that group whose certificate names it (the member's name or its
// address's host, as the peer listener checks). The dialler checks the
// listener's certificate the same way.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace healthtwin::services {

/// A member as the tunnels see it: its name and the host:port of its
/// replication listener.
struct raft_peer {
  std::string name;
  std::string address;
};

/// A member's TLS material (PEM text): its certificate chain and key, used
/// both to listen and to dial, and the cluster CA that signs every member.
struct tunnel_credentials {
  std::string cert_pem;
  std::string key_pem;
  std::string ca_pem;
};

/// The replication listener of a member and its outgoing tunnels, on one
/// thread of their own.
class raft_tunnels {
public:
  /// A tunnel from member `peer` was accepted: `fd` is the local end (the
  /// callee owns it). Called on the tunnels' thread.
  using accepted_fn = std::function<void(const std::string& peer, int fd)>;
  /// A dialled tunnel is up (`fd` >= 0, the callee owns it) or failed
  /// (`fd` < 0, `error` says why). Called on the tunnels' thread.
  using connected_fn = std::function<void(int fd, const std::string& error)>;

  /// Listens on `listen` (host:port; port 0 picks one) as member `self`;
  /// nullptr and `why` when the credentials do not load or the port is
  /// taken.
  static std::unique_ptr<raft_tunnels> open(std::string self, const std::string& listen,
                                            const tunnel_credentials& tls, std::string& why);
  /// Closes the listener and every tunnel.
  ~raft_tunnels();
  raft_tunnels(const raft_tunnels&) = delete;
  raft_tunnels& operator=(const raft_tunnels&) = delete;

  /// The port it listens on.
  uint16_t port() const;
  /// This member's name, as it introduces itself.
  const std::string& self() const;

  /// Tunnels for `group` from one of `members` go to `accepted` (replacing
  /// an earlier registration of the group); others are closed.
  void serve(uint64_t group, std::vector<raft_peer> members, accepted_fn accepted);
  /// No more tunnels for `group` are accepted.
  void unserve(uint64_t group);
  /// Dials `peer` for `group`; `done` is called once, within about 5 s.
  void connect(uint64_t group, const raft_peer& peer, connected_fn done);

  /// Requests for a copy of `group`'s store (from one of the group's
  /// members, on the same listener and checks) go to `requested`, which
  /// writes the copy to the local end it gets (and owns). A group must be
  /// served first; its later serve() keeps this.
  void serve_copies(uint64_t group, accepted_fn requested);
  /// Dials `peer` to ask for a copy of `group`'s store: `done` gets the
  /// local end to read it from.
  void request_copy(uint64_t group, const raft_peer& peer, connected_fn done);

  /// Tunnels refused since start (handshake, preamble or certificate).
  uint64_t refused() const;

private:
  struct impl;
  explicit raft_tunnels(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace healthtwin::services
