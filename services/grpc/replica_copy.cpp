#include "services/grpc/replica_copy.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <google/protobuf/util/time_util.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "actors/models/wall_clock.hpp"
#include "actors/models/quoted.hpp"
#include "services/grpc/status_mapping.hpp"
#include "storage/errc.hpp"
#include "storage/replica_files.hpp"
#include "storage/store.hpp"

namespace healthtwin::services {

namespace fs = std::filesystem;

namespace {

// Removes the copy however the stream ends.
struct scratch_dir {
  fs::path path;
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

grpc::Status internal(const std::string& what) {
  spdlog::error("replica copy: {}", what);
  return grpc::Status(grpc::StatusCode::INTERNAL, "the replica copy failed: " + what);
}

}  // namespace

replica_metrics::replica_metrics(prometheus::Registry& registry) {
  auto& copies = prometheus::BuildCounter()
                     .Name("healthtwin_replica_copies_total")
                     .Help("Copies of this node's data streamed to standby replicas (ReadReplicaCopy), by outcome")
                     .Register(registry);
  sent = &copies.Add({{"outcome", "sent"}});
  failed = &copies.Add({{"outcome", "failed"}});
  last_sent = &prometheus::BuildGauge()
                   .Name("healthtwin_replica_copy_last_sent_timestamp_seconds")
                   .Help("When the last copy streamed whole to a standby replica was made (0: never)")
                   .Register(registry)
                   .Add({});
}

grpc::Status replica_holds(const v1::ReadReplicaCopyRequest& req, std::map<std::string, uint64_t>& out) {
  if (static_cast<size_t>(req.have_size()) > max_replica_have)
    return invalid_argument("have", "must list at most " + std::to_string(max_replica_have) + " files");
  for (int i = 0; i < req.have_size(); ++i) {
    auto& f = req.have(i);
    if (!storage::valid_data_file_name(f.name()))
      return invalid_argument("have[" + std::to_string(i) + "].name",
                              "must be a file name of 1-255 bytes without '/', got " +
                                  models::quoted_input(f.name()));
    out[f.name()] = f.size_bytes();
  }
  return grpc::Status::OK;
}

namespace {

grpc::Status stream_copy(const replica_source& src, const std::map<std::string, uint64_t>& holds,
                         grpc::ServerContext* call, grpc::ServerWriter<v1::ReplicaCopyChunk>* writer,
                         int64_t& made_at);

}  // namespace

grpc::Status stream_replica_copy(const replica_source& src, const std::map<std::string, uint64_t>& holds,
                                 grpc::ServerContext* call, grpc::ServerWriter<v1::ReplicaCopyChunk>* writer) {
  int64_t made_at = 0;
  auto st = stream_copy(src, holds, call, writer, made_at);
  if (src.metrics) {
    (st.ok() ? src.metrics->sent : src.metrics->failed)->Increment();
    if (st.ok())
      src.metrics->last_sent->Set(static_cast<double>(made_at) / 1000.0);
  }
  return st;
}

namespace {

grpc::Status stream_copy(const replica_source& src, const std::map<std::string, uint64_t>& holds,
                         grpc::ServerContext* call, grpc::ServerWriter<v1::ReplicaCopyChunk>* writer,
                         int64_t& made_at) {
  scratch_dir dir{fs::path{src.scratch_root} / ".replica-copy"};
  std::error_code ec;
  fs::create_directories(src.scratch_root, ec);
  if (ec)
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "the backup directory cannot be created: " + ec.message());
  fs::remove_all(dir.path, ec);  // a copy left by a node that stopped mid-stream
  made_at = models::wall_clock_ms();
  if (auto made = src.store.checkpoint(dir.path.string()); !made)
    return internal(storage::describe(made.error()));

  v1::ReplicaCopyChunk head;
  std::vector<std::pair<std::string, uint64_t>> files;
  for (auto& e : fs::directory_iterator(dir.path, ec)) {
    if (!e.is_regular_file(ec))
      continue;
    files.emplace_back(e.path().filename().string(), e.file_size(ec));
  }
  if (ec)
    return internal("listing the copy: " + ec.message());
  std::sort(files.begin(), files.end());
  for (auto& [name, size] : files) {
    auto* f = head.add_files();
    f->set_name(name);
    f->set_size_bytes(size);
  }
  *head.mutable_copy_time() = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(made_at);
  head.set_node(src.node);
  head.set_node_key_id(src.store.node_key_id());
  head.set_database_id(src.store.database_id());
  auto gone = [&] { return call->IsCancelled() || src.stopping.load(); };
  auto went_away = grpc::Status(grpc::StatusCode::CANCELLED, "the replica went away or the node stops");
  if (!writer->Write(head))
    return went_away;

  std::string buffer(replica_chunk_bytes, '\0');
  uint64_t sent = 0;
  for (auto& [name, size] : files) {
    if (!storage::replica_lacks(name, size, holds))
      continue;
    std::ifstream in{dir.path / name, std::ios::binary};
    if (!in)
      return internal("cannot open " + name);
    uint64_t offset = 0;
    while (offset < size) {
      if (gone())
        return went_away;
      auto want = static_cast<std::streamsize>(std::min<uint64_t>(buffer.size(), size - offset));
      in.read(buffer.data(), want);
      if (in.gcount() != want)
        return internal(name + " is shorter than its listed size");
      v1::ReplicaCopyChunk c;
      c.set_file(name);
      c.set_offset(offset);
      c.set_data(buffer.data(), static_cast<size_t>(want));
      if (!writer->Write(c))
        return went_away;
      offset += static_cast<uint64_t>(want);
      sent += static_cast<uint64_t>(want);
    }
  }
  spdlog::info("replica copy: {} files, {} bytes sent", files.size(), sent);
  return grpc::Status::OK;
}

}  // namespace

}  // namespace healthtwin::services
