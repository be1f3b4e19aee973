#include "services/twinctl/replica_commands.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "actors/models/quoted.hpp"
#include "actors/models/wall_clock.hpp"
#include "healthtwin/v1/cluster.grpc.pb.h"
#include "services/twinctl/api_commands.hpp"
#include "services/twinctl/replica_copies.hpp"
#include "storage/replica_files.hpp"

namespace healthtwin::twinctl {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> interrupted{false};

extern "C" void on_stop_signal(int) {
  interrupted = true;
}

// How one copy went.
struct copy_outcome {
  bool ok = false;
  bool other_database = false;  // the node's database is not the one of the last copy
  grpc::Status status;          // the call's, when it failed
  std::string error;            // a local failure, or what the node sent wrong
  copy_info info;
  uint64_t received_files = 0, received_bytes = 0, linked = 0;
};

// A file of the copy as it is received.
struct incoming {
  uint64_t size = 0;
  bool lacking = true;
  uint64_t written = 0;
};

bool write_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    auto n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Closes (synced) the file being written; false when it cannot be synced.
bool close_synced(int& fd) {
  if (fd < 0)
    return true;
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  fd = -1;
  return ok;
}

// The description the node sends first, checked: plain, unique file names.
std::string check_head(const v1::ReplicaCopyChunk& head, std::map<std::string, incoming>& files,
                       const std::map<std::string, uint64_t>& holds) {
  if (head.files_size() == 0)
    return "the node's first message lists no files";
  if (head.database_id().empty())
    return "the node's first message names no database";
  for (auto& f : head.files()) {
    if (!storage::valid_data_file_name(f.name()))
      return "the node listed a file named " + models::quoted_input(f.name());
    if (!files.emplace(f.name(), incoming{f.size_bytes(), storage::replica_lacks(f.name(), f.size_bytes(), holds)})
             .second)
      return "the node listed " + models::quoted_input(f.name()) + " twice";
  }
  return {};
}

// Reads one copy into DIR/copy-N.partial, then makes it DIR/copy-N.
copy_outcome read_copy(v1::ClusterService::Stub& stub, const std::string& dir, const std::string& source,
                       const std::optional<copy_info>& last, bool link_last) {
  copy_outcome out;
  std::map<std::string, uint64_t> holds;
  std::string last_dir = last ? copy_path(dir, last->number) : "";
  if (last && link_last)
    holds = table_files(last_dir);
  uint64_t number = last ? last->number + 1 : 1;
  auto partial = copy_path(dir, number) + ".partial";
  std::error_code ec;
  fs::remove_all(partial, ec);
  if (fs::create_directory(partial, ec); ec) {
    out.error = "cannot create " + partial + ": " + ec.message();
    return out;
  }
  v1::ReadReplicaCopyRequest req;
  for (auto& [name, size] : holds) {
    auto* f = req.add_have();
    f->set_name(name);
    f->set_size_bytes(size);
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(12));
  auto stream = stub.ReadReplicaCopy(&ctx, req);
  v1::ReplicaCopyChunk chunk;
  std::map<std::string, incoming> files;
  int fd = -1;
  std::string current;
  auto give_up = [&](std::string why) {
    close_synced(fd);
    ctx.TryCancel();
    stream->Finish();
    out.error = std::move(why);
    return out;
  };
  if (!stream->Read(&chunk)) {
    out.status = stream->Finish();
    if (out.status.ok())
      out.error = "the node sent nothing";
    return out;
  }
  if (auto bad = check_head(chunk, files, holds); !bad.empty())
    return give_up(bad);
  out.info = copy_info{number, chunk.node(), source, chunk.database_id(), chunk.node_key_id(),
                       google::protobuf::util::TimeUtil::TimestampToMilliseconds(chunk.copy_time()), 0, 0};
  if (last && link_last && last->database_id != chunk.database_id()) {
    out.other_database = true;
    return give_up("the node's database is not the one of copy " + std::to_string(last->number) +
                   " (restored or replaced): its table files are not ours");
  }
  while (stream->Read(&chunk)) {
    if (interrupted)
      return give_up("interrupted");
    auto it = files.find(chunk.file());
    if (it == files.end() || !it->second.lacking)
      return give_up("the node sent bytes of " + models::quoted_input(chunk.file()) + ", not a file it lacks");
    auto& f = it->second;
    if (chunk.file() != current) {
      if (!close_synced(fd))
        return give_up("cannot sync " + current);
      current = chunk.file();
      fd = ::open((partial + "/" + current).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0)
        return give_up("cannot create " + partial + "/" + current);
    }
    if (chunk.offset() != f.written || f.written + chunk.data().size() > f.size)
      return give_up("the node sent " + current + " out of order or past its size");
    if (!write_all(fd, chunk.data()))
      return give_up("cannot write " + partial + "/" + current);
    f.written += chunk.data().size();
    out.received_bytes += chunk.data().size();
  }
  if (!close_synced(fd)) {
    out.error = "cannot sync " + current;
    return out;
  }
  out.status = stream->Finish();
  if (!out.status.ok())
    return out;
  for (auto& [name, f] : files) {
    auto to = partial + "/" + name;
    if (f.lacking) {
      if (f.size == 0 && !fs::exists(to, ec))
        std::fclose(std::fopen(to.c_str(), "wb"));
      if (f.written != f.size) {
        out.error = "the node ended the copy before all of " + name + " came";
        return out;
      }
      ++out.received_files;
    } else {
      fs::create_hard_link(last_dir + "/" + name, to, ec);
      if (ec)  // another file system: copy it
        fs::copy_file(last_dir + "/" + name, to, ec);
      if (ec) {
        out.error = "cannot link " + name + " from copy " + std::to_string(last->number) + ": " + ec.message();
        return out;
      }
      ++out.linked;
    }
    out.info.bytes += f.size;
    ++out.info.files;
  }
  auto final_dir = copy_path(dir, number);
  if (!sync_path(partial) || (fs::rename(partial, final_dir, ec), ec) || !sync_path(dir)) {
    out.error = "cannot complete " + final_dir;
    return out;
  }
  out.ok = write_copy_info(dir, out.info, out.error);
  return out;
}

void print_copy(const copy_outcome& c, double seconds) {
  std::printf("copy %llu of %s made %s: %llu files (%llu bytes), %llu received (%llu bytes), %llu linked, in %.2f s\n",
              static_cast<unsigned long long>(c.info.number), c.info.node.c_str(),
              rfc3339(c.info.copy_time_ms).c_str(), static_cast<unsigned long long>(c.info.files),
              static_cast<unsigned long long>(c.info.bytes), static_cast<unsigned long long>(c.received_files),
              static_cast<unsigned long long>(c.received_bytes), static_cast<unsigned long long>(c.linked),
              seconds);
  std::fflush(stdout);
}

// The exit code of a failed copy, after saying why.
int report_failure(const copy_outcome& c) {
  if (!c.error.empty()) {
    std::fprintf(stderr, "twinctl: replica copy failed: %s\n", c.error.c_str());
    return refused;
  }
  return failed("ReadReplicaCopy", c.status);
}

nlohmann::json info_json(const copy_info& c) {
  return {{"copy", c.number},
          {"node", c.node},
          {"source", c.source},
          {"copy_time", rfc3339(c.copy_time_ms)},
          {"age_seconds", static_cast<double>(models::wall_clock_ms() - c.copy_time_ms) / 1000.0},
          {"files", c.files},
          {"bytes", c.bytes},
          {"node_key_id", c.node_key_id}};
}

}  // namespace

int follow_replica(const services::channel_settings& node, const follow_options& o) {
  std::string why;
  replica_lock lock{o.dir, why};
  if (!lock.held()) {
    std::fprintf(stderr, "twinctl: %s\n", why.c_str());
    return usage;
  }
  tidy_copies(o.dir, o.keep);
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  while (!interrupted) {
    auto start = std::chrono::steady_clock::now();
    auto stub = stub_to<v1::ClusterService>(node);
    copy_outcome c;
    if (!stub) {
      c.error = "cannot reach " + node.target;
    } else {
      auto copies = complete_copies(o.dir);
      std::optional<copy_info> last;
      if (!copies.empty())
        last = copies.back();
      c = read_copy(*stub, o.dir, node.target, last, true);
      if (c.other_database) {
        std::fprintf(stderr, "twinctl: %s; copying everything\n", c.error.c_str());
        // The node may still be ending the call just cancelled (ABORTED: one copy at a time).
        for (int tries = 0; tries < 50 && !interrupted; ++tries) {
          c = read_copy(*stub, o.dir, node.target, last, false);
          if (c.status.error_code() != grpc::StatusCode::ABORTED)
            break;
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    }
    auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int code = c.ok ? done : report_failure(c);
    if (c.ok)
      print_copy(c, took);
    tidy_copies(o.dir, o.keep);
    if (o.once)
      return code;
    while (!interrupted && std::chrono::steady_clock::now() - start < o.interval)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done;
}

int promote_replica(const std::string& dir, const std::string& data_dir, bool json) {
  std::string why;
  replica_lock lock{dir, why};
  if (!lock.held()) {
    std::fprintf(stderr, "twinctl: %s\n", why.c_str());
    return usage;
  }
  auto copies = complete_copies(dir);
  if (copies.empty()) {
    std::fprintf(stderr, "twinctl: %s holds no complete copy\n", dir.c_str());
    return refused;
  }
  std::error_code ec;
  if (fs::exists(data_dir, ec)) {
    std::fprintf(stderr, "twinctl: --data-dir %s exists: name a new directory\n", data_dir.c_str());
    return usage;
  }
  auto& newest = copies.back();
  auto from = copy_path(dir, newest.number);
  if (auto parent = fs::path{data_dir}.parent_path(); !parent.empty())
    fs::create_directories(parent, ec);
  fs::rename(from, data_dir, ec);
  if (ec) {  // another file system: copy, then remove
    ec.clear();
    fs::copy(from, data_dir, fs::copy_options::recursive, ec);
    if (ec) {
      std::fprintf(stderr, "twinctl: cannot copy %s to %s: %s\n", from.c_str(), data_dir.c_str(),
                   ec.message().c_str());
      fs::remove_all(data_dir, ec);
      return refused;
    }
    for (auto& e : fs::directory_iterator(data_dir, ec))
      sync_path(e.path().string());
    fs::remove_all(from, ec);
  }
  sync_path(data_dir);
  sync_path(fs::path{data_dir}.parent_path().string());
  fs::remove(from + ".json", ec);
  sync_path(dir);
  if (json) {
    auto j = info_json(newest);
    j["data_dir"] = data_dir;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("promoted copy %llu of %s, made %s (%.1f s ago: readings acknowledged after it are not in it), "
                "to %s\nstart the node with --data-dir %s and the primary's keys (node key id %s)\n",
                static_cast<unsigned long long>(newest.number), newest.node.c_str(),
                rfc3339(newest.copy_time_ms).c_str(),
                static_cast<double>(models::wall_clock_ms() - newest.copy_time_ms) / 1000.0, data_dir.c_str(),
                data_dir.c_str(), newest.node_key_id.c_str());
  }
  return done;
}

int replica_status(const std::string& dir, bool json) {
  auto copies = complete_copies(dir);
  if (copies.empty()) {
    std::fprintf(stderr, "twinctl: %s holds no complete copy\n", dir.c_str());
    return refused;
  }
  auto& c = copies.back();
  if (json) {
    std::printf("%s\n", info_json(c).dump().c_str());
    return done;
  }
  std::printf("copy %llu of %s (from %s), made %s, %.1f s ago: %llu files, %llu bytes, node key id %s\n",
              static_cast<unsigned long long>(c.number), c.node.c_str(), c.source.c_str(),
              rfc3339(c.copy_time_ms).c_str(), static_cast<double>(models::wall_clock_ms() - c.copy_time_ms) / 1000.0,
              static_cast<unsigned long long>(c.files), static_cast<unsigned long long>(c.bytes),
              c.node_key_id.c_str());
  return done;
}

}  // namespace healthtwin::twinctl
