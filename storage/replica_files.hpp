#pragma once
// Which files of a data directory a standby replica must receive
// (ClusterService.ReadReplicaCopy, twinctl replica follow).

#include <cstdint>
#include <map>
#include <string>

namespace healthtwin::storage {

/// Whether `name` may be a file of a data directory: a plain file name of
/// 1-255 bytes, no '/', not "." or "..", no NUL. Checked on both sides, so
/// neither a replica nor a primary can make the other write elsewhere.
bool valid_data_file_name(const std::string& name);

/// Whether a file never changes once written: RocksDB's table files
/// (*.sst). Every other file of a copy (MANIFEST, CURRENT, OPTIONS) is sent
/// each time.
bool immutable_data_file(const std::string& name);

/// Whether a copy's file must be sent to a replica that holds `holds`
/// (name -> size): every file but an immutable one it holds at that size.
bool replica_lacks(const std::string& name, uint64_t size, const std::map<std::string, uint64_t>& holds);

}  // namespace healthtwin::storage
