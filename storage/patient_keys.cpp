#include "storage/patient_keys.hpp"

#include <cstring>
#include <memory>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "storage/aead.hpp"
#include "storage/store_impl.hpp"

#include "storage/errc.hpp"
#include "storage/store.hpp"

namespace healthtwin::storage {

namespace {

constexpr uint8_t sealed_format = 1;
constexpr size_t ref_len = 8;
constexpr size_t nonce_len = aead::nonce_len;
constexpr size_t tag_len = aead::tag_len;
constexpr size_t sealed_overhead = 1 + ref_len + nonce_len + tag_len;

// Keys of the `keys` column family.
std::string ref_key(std::string_view patient) {
  return "n" + std::string{patient};
}
std::string wrapped_key(std::string_view ref) {
  return "k" + std::string{ref};
}
std::string erased_key(const std::string& pseudonym) {
  return "z" + pseudonym;
}

std::string_view as_view(const std::array<uint8_t, 8>& ref) {
  return {reinterpret_cast<const char*>(ref.data()), ref.size()};
}

}  // namespace

patient_keys::patient_keys(store& s, const std::optional<node_key>& key,
                           const node_key::bytes& pseudonym_key)
    : store_(s), sealing_(key.has_value()), pseudonym_mac_(pseudonym_key) {
  if (key)
    wrap_key_ = key->derive("healthtwin patient key wrapping v1");
}

patient_keys::~patient_keys() {
  OPENSSL_cleanse(wrap_key_.data(), wrap_key_.size());
  for (auto& [_, k] : keys_)
    OPENSSL_cleanse(k.data(), k.size());
}

std::string patient_keys::pseudonym(std::string_view patient) const {
  return short_hex(pseudonym_mac_(patient));
}

bool patient_keys::erased(std::string_view patient) {
  auto v = store_.get(column::keys, erased_key(pseudonym(patient)));
  return v && *v;
}

caf::expected<std::optional<patient_keys::key_ref>> patient_keys::find_ref(
    std::string_view patient) {
  {
    std::shared_lock lock{mtx_};
    if (auto i = refs_.find(std::string{patient}); i != refs_.end())
      return std::optional<key_ref>{i->second};
  }
  auto v = store_.get(column::keys, ref_key(patient));
  if (!v)
    return v.error();
  if (!*v)
    return std::optional<key_ref>{};
  if ((*v)->size() != ref_len)
    return caf::make_error(errc::invalid_record, std::string{"patient key reference"});
  key_ref ref;
  std::memcpy(ref.data(), (*v)->data(), ref_len);
  std::unique_lock lock{mtx_};
  refs_[std::string{patient}] = ref;
  return std::optional<key_ref>{ref};
}

caf::expected<std::optional<patient_keys::key_bytes>> patient_keys::find_key(const key_ref& ref) {
  std::string ref_s{as_view(ref)};
  {
    std::shared_lock lock{mtx_};
    if (auto i = keys_.find(ref_s); i != keys_.end())
      return std::optional<key_bytes>{i->second};
  }
  auto v = store_.get(column::keys, wrapped_key(ref_s));
  if (!v)
    return v.error();
  if (!*v)
    return std::optional<key_bytes>{};
  std::string_view w = **v;
  if (w.size() != nonce_len + 32 + tag_len)
    return caf::make_error(errc::invalid_record, std::string{"wrapped patient key"});
  auto plain = aead::open(wrap_key_.data(), reinterpret_cast<const uint8_t*>(w.data()), ref_s,
                        w.substr(nonce_len));
  if (!plain || plain->size() != 32)
    return caf::make_error(errc::invalid_record,
                           std::string{"wrapped patient key does not open under the node key"});
  key_bytes k;
  std::memcpy(k.data(), plain->data(), k.size());
  OPENSSL_cleanse(plain->data(), plain->size());
  std::unique_lock lock{mtx_};
  keys_[ref_s] = k;
  return std::optional<key_bytes>{k};
}

caf::error patient_keys::new_key(write_batch& batch, std::string_view patient, key_ref& ref,
                                 key_bytes& key) {
  uint8_t nonce[nonce_len];
  if (RAND_bytes(ref.data(), ref_len) != 1 || RAND_bytes(key.data(), 32) != 1 ||
      RAND_bytes(nonce, nonce_len) != 1)
    return caf::make_error(errc::io_error, std::string{"no random bytes for a patient key"});
  std::string wrapped{reinterpret_cast<const char*>(nonce), nonce_len};
  std::string ref_s{as_view(ref)};
  if (!aead::seal(wrap_key_.data(), nonce, ref_s,
                std::string_view{reinterpret_cast<const char*>(key.data()), key.size()}, wrapped))
    return caf::make_error(errc::io_error, std::string{"wrapping a patient key failed"});
  batch.put(column::keys, wrapped_key(ref_s), wrapped);
  batch.put(column::keys, ref_key(patient), ref_s);
  return caf::none;
}

caf::error patient_keys::add_key(write_batch& batch, std::string_view patient) {
  if (!sealing_)
    return caf::none;
  key_ref ref;
  key_bytes key;
  auto err = new_key(batch, patient, ref, key);
  OPENSSL_cleanse(key.data(), key.size());
  return err;
}

caf::expected<std::string> patient_keys::seal(std::string_view patient, std::string_view plain) {
  if (!sealing_) {
    // Nothing to destroy here: the erasure marker alone keeps an erased
    // patient's values from being written again.
    if (erased(patient))
      return caf::make_error(errc::erased, std::string{"the patient was erased"});
    return std::string{plain};
  }
  auto ref = find_ref(patient);
  if (!ref)
    return ref.error();
  if (!*ref) {
    // An owner registered without a key (a device's own alerts): create
    // it, durably, before any value sealed with it can be written.
    std::lock_guard<std::mutex> guard{create_mtx_};
    ref = find_ref(patient);
    if (!ref)
      return ref.error();
    if (!*ref) {
      if (erased(patient))
        return caf::make_error(errc::erased, std::string{"the patient was erased"});
      key_ref fresh;
      key_bytes k;
      write_batch b{store_};
      if (auto err = new_key(b, patient, fresh, k))
        return err;
      if (auto err = store_.write(b, true))
        return err;
      std::unique_lock lock{mtx_};
      refs_[std::string{patient}] = fresh;
      keys_[std::string{as_view(fresh)}] = k;
      OPENSSL_cleanse(k.data(), k.size());
      ref = std::optional<key_ref>{fresh};
    }
  }
  auto key = find_key(**ref);
  if (!key)
    return key.error();
  if (!*key)
    return caf::make_error(errc::erased, std::string{"the patient was erased"});
  std::string out;
  out.reserve(plain.size() + sealed_overhead);
  out.push_back(static_cast<char>(sealed_format));
  out.append(as_view(**ref));
  uint8_t nonce[nonce_len];
  if (RAND_bytes(nonce, nonce_len) != 1)
    return caf::make_error(errc::io_error, std::string{"no random bytes for a nonce"});
  out.append(reinterpret_cast<const char*>(nonce), nonce_len);
  if (!aead::seal((*key)->data(), nonce, as_view(**ref), plain, out))
    return caf::make_error(errc::io_error, std::string{"sealing a value failed"});
  return out;
}

caf::expected<std::string> patient_keys::unseal(std::string_view sealed) {
  if (!sealing_)
    return std::string{sealed};
  if (sealed.size() < sealed_overhead || static_cast<uint8_t>(sealed[0]) != sealed_format)
    return caf::make_error(errc::invalid_record, std::string{"not a sealed patient value"});
  key_ref ref;
  std::memcpy(ref.data(), sealed.data() + 1, ref_len);
  auto key = find_key(ref);
  if (!key)
    return key.error();
  if (!*key)
    return caf::make_error(errc::erased, std::string{"the patient's key was destroyed"});
  auto nonce = reinterpret_cast<const uint8_t*>(sealed.data() + 1 + ref_len);
  auto plain = aead::open((*key)->data(), nonce, as_view(ref), sealed.substr(1 + ref_len + nonce_len));
  if (!plain)
    return caf::make_error(errc::invalid_record,
                           std::string{"sealed patient value fails its authentication tag"});
  return std::move(*plain);
}

caf::error patient_keys::destroy(std::string_view patient) {
  std::lock_guard<std::mutex> guard{create_mtx_};
  auto ref = find_ref(patient);
  if (!ref)
    return ref.error();
  write_batch b{store_};
  b.put(column::keys, erased_key(pseudonym(patient)), {});
  b.erase(column::keys, ref_key(patient));
  if (*ref)
    b.erase(column::keys, wrapped_key(std::string{as_view(**ref)}));
  if (auto err = store_.write(b, true))
    return err;
  {
    std::unique_lock lock{mtx_};
    refs_.erase(std::string{patient});
    if (*ref) {
      auto i = keys_.find(std::string{as_view(**ref)});
      if (i != keys_.end()) {
        OPENSSL_cleanse(i->second.data(), i->second.size());
        keys_.erase(i);
      }
    }
  }
  // The wrapped key still sits in older table files and in the WAL until
  // purge_erased() (storage/erasure.hpp) compacts them away.
  return caf::none;
}

// The pseudonym secret of a directory without a node key (`keys` column;
// no patient's key ref, wrapped key or erasure marker starts with "s").
constexpr std::string_view pseudonym_secret_key = "s:pseudonym-key";

// The key patients' pseudonyms are keyed with. With a node key it is
// derived from it. Without one, a directory keeps a secret of its own in the
// `keys` column: random at its creation (or --pseudonym-key-file's), so
// pseudonyms cannot be recomputed from a guessed patient id on another node.
// A directory created before there was one keeps the old all-zero key (its
// erasure markers are named with it), and says so.
caf::error load_pseudonym_key(store::impl& im, bool fresh) {
  if (im.key) {
    im.pseudonym_key = im.key->derive("healthtwin patient pseudonyms v1");
    return caf::none;
  }
  std::optional<node_key::bytes> configured;
  if (!im.settings.pseudonym_key_file.empty()) {
    auto k = node_key::load(im.settings.pseudonym_key_file);
    if (!k)
      return k.error();
    configured = k->derive("healthtwin patient pseudonyms v1");
  }
  std::string stored;
  auto st = im.db->Get(rocksdb::ReadOptions{}, im.cf(column::keys), pseudonym_secret_key, &stored);
  if (st.ok() && stored.size() == im.pseudonym_key.size()) {
    std::memcpy(im.pseudonym_key.data(), stored.data(), stored.size());
    if (configured && *configured != im.pseudonym_key)
      return caf::make_error(errc::incompatible,
                             "data directory " + im.settings.data_dir +
                                 " keys pseudonyms with another secret than --pseudonym-key-file " +
                                 im.settings.pseudonym_key_file);
    if (im.pseudonym_key == node_key::bytes{})
      spdlog::warn("storage: this data directory keys patients' pseudonyms with the fixed key of "
                   "earlier versions (its erasure markers are named with it): a pseudonym can be "
                   "recomputed from a guessed patient id. A new data directory gets a random key.");
    return caf::none;
  }
  if (!st.ok() && !st.IsNotFound())
    return to_error(st, "read the pseudonym key");
  if (fresh) {
    if (configured)
      im.pseudonym_key = *configured;
    else if (RAND_bytes(im.pseudonym_key.data(), static_cast<int>(im.pseudonym_key.size())) != 1)
      return caf::make_error(errc::io_error, std::string{"no random bytes for the pseudonym key"});
  } else if (configured) {
    return caf::make_error(errc::incompatible,
                           "data directory " + im.settings.data_dir +
                               " was created before pseudonym keys and keeps its fixed one; "
                               "remove --pseudonym-key-file");
  }  // else: an older directory keeps the all-zero key
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto put = im.db->Put(wo, im.cf(column::keys), pseudonym_secret_key,
                        rocksdb::Slice{reinterpret_cast<const char*>(im.pseudonym_key.data()),
                                       im.pseudonym_key.size()});
  if (auto err = to_error(put, "write the pseudonym key"))
    return err;
  return load_pseudonym_key(im, false);  // warns for an older directory
}

}  // namespace healthtwin::storage
