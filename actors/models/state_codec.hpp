#pragma once

#include <cstdint>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>

namespace healthtwin::models {

/// Little-endian binary writer for model state (kept in twin snapshots).
class state_writer {
public:
  template <class T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put_string(std::string_view s) {
    put(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string take() { return std::move(out_); }

private:
  std::string out_;
};

/// Reader for state_writer output; after any short read ok() is false and
/// every further read yields zeros.
class state_reader {
public:
  explicit state_reader(std::string_view in) : in_(in) {}
  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v{};
    if (in_.size() < sizeof v) {
      ok_ = false;
      in_ = {};
      return v;
    }
    std::memcpy(&v, in_.data(), sizeof v);
    in_.remove_prefix(sizeof v);
    return v;
  }
  /// A time in ms since the epoch (or -1, "none"): beyond 2^52 ms either
  /// way (over 100,000 years) marks the input as malformed, so that no
  /// difference or sum of stored times and durations can overflow.
  int64_t get_time() {
    auto t = get<int64_t>();
    if (t < -max_time_ms || t > max_time_ms)
      fail();
    return ok_ ? t : 0;
  }
  static constexpr int64_t max_time_ms = int64_t{1} << 52;
  /// A measured or derived quantity: NaN or infinity marks the input as
  /// malformed (the model never computes one from valid readings).
  template <class T>
  T get_finite() {
    static_assert(std::is_floating_point_v<T>);
    auto v = get<T>();
    if (!std::isfinite(v))
      fail();
    return ok_ ? v : T{};
  }
  std::string get_string(size_t max = 4096) {
    auto n = get<uint32_t>();
    if (!ok_ || n > in_.size() || n > max) {
      ok_ = false;
      in_ = {};
      return {};
    }
    std::string s{in_.substr(0, n)};
    in_.remove_prefix(n);
    return s;
  }
  /// Marks the input as malformed (a value out of its range).
  void fail() noexcept {
    ok_ = false;
    in_ = {};
  }
  bool ok() const noexcept { return ok_; }
  bool done() const noexcept { return in_.empty(); }

private:
  std::string_view in_;
  bool ok_ = true;
};

}  // namespace healthtwin::models
