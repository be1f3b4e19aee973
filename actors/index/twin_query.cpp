#include "actors/index/twin_query.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <tuple>

#include "actors/models/quoted.hpp"

namespace healthtwin::actors {

namespace {

enum class field : int { name, ward, bed, news2, news2_complete, news2_band, alerts_priority, alerts_count };
enum class field_type { text, number, boolean, band, priority };
enum class op : int { eq, ne, lt, le, gt, ge };

struct field_info {
  std::string_view name;
  field f;
  field_type type;
  bool orderable;
};

constexpr std::array<field_info, 8> fields{{
    {"name", field::name, field_type::text, true},
    {"ward", field::ward, field_type::text, true},
    {"bed", field::bed, field_type::text, true},
    {"news2", field::news2, field_type::number, true},
    {"news2.complete", field::news2_complete, field_type::boolean, false},
    {"news2.band", field::news2_band, field_type::band, false},
    {"alerts.priority", field::alerts_priority, field_type::priority, true},
    {"alerts.count", field::alerts_count, field_type::number, true},
}};

const field_info* find_field(std::string_view name) {
  for (auto& f : fields)
    if (f.name == name)
      return &f;
  return nullptr;
}

std::string field_list(bool orderable_only) {
  std::string out;
  for (auto& f : fields)
    if (!orderable_only || f.orderable)
      out += (out.empty() ? "" : ", ") + std::string{f.name};
  return out;
}

// Enum values by name, with or without the proto prefix.
std::optional<int64_t> enum_value(field_type t, std::string_view word) {
  struct entry {
    std::string_view name;
    int64_t value;
  };
  static constexpr std::array<entry, 4> bands{{{"LOW", 1}, {"LOW_MEDIUM", 2}, {"MEDIUM", 3}, {"HIGH", 4}}};
  static constexpr std::array<entry, 4> priorities{{{"NONE", 0}, {"LOW", 1}, {"MEDIUM", 2}, {"HIGH", 3}}};
  std::string_view prefix = t == field_type::band ? "NEWS2_BAND_" : "PRIORITY_";
  if (word.substr(0, prefix.size()) == prefix)
    word.remove_prefix(prefix.size());
  for (auto& e : t == field_type::band ? bands : priorities)
    if (e.name == word)
      return e.value;
  return std::nullopt;
}

// ---- tokens ------------------------------------------------------------------

enum class tok { end, word, number, string, op, lparen, rparen, minus, comma };

struct token {
  tok kind = tok::end;
  std::string text;  // word, string (unescaped), number digits
  op o = op::eq;
  size_t pos = 0;
};

class lexer {
public:
  explicit lexer(std::string_view s) : s_(s) {}

  // False with `error` set on a character that starts no token.
  bool next(token& t, std::string& error) {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_])))
      ++i_;
    t = token{};
    t.pos = i_;
    if (i_ >= s_.size())
      return true;
    char c = s_[i_];
    auto is_word = [](char x) {
      return std::isalnum(static_cast<unsigned char>(x)) || x == '_' || x == '.';
    };
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i_;
      while (j < s_.size() && is_word(s_[j]))
        ++j;
      t.kind = tok::word;
      t.text = s_.substr(i_, j - i_);
      i_ = j;
      return true;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i_;
      while (j < s_.size() && std::isdigit(static_cast<unsigned char>(s_[j])))
        ++j;
      t.kind = tok::number;
      t.text = s_.substr(i_, j - i_);
      i_ = j;
      return true;
    }
    if (c == '"') {
      ++i_;
      while (i_ < s_.size() && s_[i_] != '"') {
        if (s_[i_] == '\\' && i_ + 1 < s_.size())
          ++i_;
        t.text += s_[i_++];
      }
      if (i_ >= s_.size()) {
        error = "unterminated string starting at offset " + std::to_string(t.pos);
        return false;
      }
      ++i_;
      t.kind = tok::string;
      return true;
    }
    auto two = s_.substr(i_, 2);
    struct sym {
      std::string_view text;
      op o;
    };
    static constexpr std::array<sym, 6> ops{
        {{"!=", op::ne}, {"<=", op::le}, {">=", op::ge}, {"=", op::eq}, {"<", op::lt}, {">", op::gt}}};
    for (auto& o : ops)
      if (two.substr(0, o.text.size()) == o.text) {
        t.kind = tok::op;
        t.o = o.o;
        i_ += o.text.size();
        return true;
      }
    ++i_;
    switch (c) {
      case '(': t.kind = tok::lparen; return true;
      case ')': t.kind = tok::rparen; return true;
      case '-': t.kind = tok::minus; return true;
      case ',': t.kind = tok::comma; return true;
      default:
        error = "unexpected character " + models::quoted_input(std::string_view{&c, 1}) + " at offset " +
                std::to_string(t.pos);
        return false;
    }
  }

private:
  std::string_view s_;
  size_t i_ = 0;
};

// Reads all tokens up front, from at most max_filter_bytes of input.
bool tokenize(std::string_view text, std::vector<token>& out, std::string& error) {
  if (text.size() > max_filter_bytes) {
    error = "longer than " + std::to_string(max_filter_bytes) + " bytes";
    return false;
  }
  lexer lx{text};
  for (;;) {
    token t;
    if (!lx.next(t, error))
      return false;
    out.push_back(std::move(t));
    if (out.back().kind == tok::end)
      return true;
  }
}

template <class T>
bool compare(const T& a, op o, const T& b) {
  switch (o) {
    case op::eq: return a == b;
    case op::ne: return !(a == b);
    case op::lt: return a < b;
    case op::le: return !(b < a);
    case op::gt: return b < a;
    case op::ge: return !(a < b);
  }
  return false;
}

std::string_view text_of(field f, std::string_view name, const patient_summary& s) {
  switch (f) {
    case field::name: return name;
    case field::ward: return s.ward;
    case field::bed: return s.bed;
    default: return {};
  }
}

}  // namespace

struct twin_filter::node {
  enum kind_t { all_of, any_of, negation, comparison } kind = comparison;
  std::vector<uint32_t> children;
  // comparison
  field f = field::name;
  field_type type = field_type::text;
  op o = op::eq;
  std::string text;
  bool prefix = false;  // text ended in '*'
  int64_t number = 0;
};

namespace {

class parser {
public:
  parser(std::vector<token> toks, std::vector<twin_filter::node>& nodes)
      : t_(std::move(toks)), nodes_(nodes) {}

  bool parse(std::string& error) {
    if (peek().kind == tok::end)
      return true;
    auto root = expr(0);
    if (!root)
      return error = error_, false;
    if (peek().kind != tok::end)
      return error = "unexpected " + describe(peek()) + " at offset " +
                     std::to_string(peek().pos),
             false;
    // Every node is added after its children, so the root is the last.
    return *root + 1 == nodes_.size();
  }

private:
  using node = twin_filter::node;

  const token& peek() const { return t_[i_]; }
  bool is_word(std::string_view w) const { return peek().kind == tok::word && peek().text == w; }

  static std::string describe(const token& t) {
    switch (t.kind) {
      case tok::end: return "end of filter";
      case tok::string: return "string " + models::quoted_input(t.text);
      case tok::op: return "operator";
      case tok::lparen: return "'('";
      case tok::rparen: return "')'";
      case tok::minus: return "'-'";
      case tok::comma: return "','";
      default: return models::quoted_input(t.text);
    }
  }

  std::optional<uint32_t> fail(std::string message) {
    if (error_.empty())
      error_ = std::move(message);
    return std::nullopt;
  }

  uint32_t add(node n) {
    nodes_.push_back(std::move(n));
    return static_cast<uint32_t>(nodes_.size() - 1);
  }

  // A chain of `next` joined by `word` (AND / OR).
  template <class Next>
  std::optional<uint32_t> chain(size_t depth, std::string_view word, node::kind_t kind, Next next) {
    auto first = next(depth);
    if (!first || !is_word(word))
      return first;
    node n;
    n.kind = kind;
    n.children.push_back(*first);
    while (is_word(word)) {
      ++i_;
      auto more = next(depth);
      if (!more)
        return std::nullopt;
      n.children.push_back(*more);
    }
    return add(std::move(n));
  }

  std::optional<uint32_t> expr(size_t depth) {
    if (depth > max_filter_depth)
      return fail("filter nests deeper than " + std::to_string(max_filter_depth) + " levels");
    return chain(depth, "AND", node::all_of, [&](size_t d) {
      return chain(d, "OR", node::any_of, [&](size_t d2) { return factor(d2); });
    });
  }

  std::optional<uint32_t> factor(size_t depth) {
    if (is_word("NOT") || peek().kind == tok::minus) {
      if (depth > max_filter_depth)
        return fail("filter nests deeper than " + std::to_string(max_filter_depth) + " levels");
      ++i_;
      auto inner = factor(depth + 1);
      if (!inner)
        return std::nullopt;
      node n;
      n.kind = node::negation;
      n.children.push_back(*inner);
      return add(std::move(n));
    }
    return primary(depth);
  }

  std::optional<uint32_t> primary(size_t depth) {
    if (peek().kind == tok::lparen) {
      ++i_;
      auto inner = expr(depth + 1);
      if (!inner)
        return std::nullopt;
      if (peek().kind != tok::rparen)
        return fail("missing ')' at offset " + std::to_string(peek().pos));
      ++i_;
      return inner;
    }
    return comparison();
  }

  std::optional<uint32_t> comparison() {
    const token& name = peek();
    if (name.kind != tok::word)
      return fail("expected a field at offset " + std::to_string(name.pos) + ", found " +
                  describe(name));
    auto* info = find_field(name.text);
    if (!info)
      return fail("unknown field " + models::quoted_input(name.text) + " at offset " + std::to_string(name.pos) +
                  " (fields: " + field_list(false) + ")");
    if (++comparisons_ > max_filter_comparisons)
      return fail("more than " + std::to_string(max_filter_comparisons) + " comparisons");
    ++i_;
    if (peek().kind != tok::op)
      return fail("expected an operator after '" + name.text + "' at offset " +
                  std::to_string(peek().pos));
    node n;
    n.f = info->f;
    n.type = info->type;
    n.o = peek().o;
    ++i_;
    const token& v = peek();
    auto bad_value = [&](std::string_view want) {
      return fail("'" + name.text + "' takes " + std::string{want} + ", found " + describe(v) +
                  " at offset " + std::to_string(v.pos));
    };
    switch (info->type) {
      case field_type::text:
        if (v.kind != tok::string)
          return bad_value("a quoted string");
        n.text = v.text;
        if (!n.text.empty() && n.text.back() == '*') {
          if (n.o != op::eq && n.o != op::ne)
            return fail("a prefix (trailing *) takes only = or != (at offset " +
                        std::to_string(v.pos) + ")");
          n.text.pop_back();
          n.prefix = true;
        }
        ++i_;
        break;
      case field_type::number: {
        bool negative = v.kind == tok::minus;
        if (negative)
          ++i_;
        const token& digits = peek();
        if (digits.kind != tok::number)
          return bad_value("a whole number");
        auto [p, ec] = std::from_chars(digits.text.data(), digits.text.data() + digits.text.size(),
                                       n.number);
        if (ec != std::errc{})
          return bad_value("a whole number in range");
        if (negative)
          n.number = -n.number;
        ++i_;
        break;
      }
      case field_type::boolean:
        if (v.kind != tok::word || (v.text != "true" && v.text != "false"))
          return bad_value("true or false");
        if (n.o != op::eq && n.o != op::ne)
          return fail("'" + name.text + "' takes only = or !=");
        n.number = v.text == "true";
        ++i_;
        break;
      case field_type::band:
      case field_type::priority: {
        auto value = v.kind == tok::word ? enum_value(info->type, v.text) : std::nullopt;
        if (!value)
          return bad_value(info->type == field_type::band ? "LOW, LOW_MEDIUM, MEDIUM or HIGH"
                                                          : "NONE, LOW, MEDIUM or HIGH");
        n.number = *value;
        ++i_;
        break;
      }
    }
    return add(std::move(n));
  }

  std::vector<token> t_;
  size_t i_ = 0;
  size_t comparisons_ = 0;
  std::vector<twin_filter::node>& nodes_;
  std::string error_;
};

}  // namespace

twin_filter::twin_filter() = default;
twin_filter::~twin_filter() = default;
twin_filter::twin_filter(twin_filter&&) noexcept = default;
twin_filter& twin_filter::operator=(twin_filter&&) noexcept = default;

std::optional<twin_filter> twin_filter::parse(std::string_view text, std::string& error) {
  std::vector<token> toks;
  if (!tokenize(text, toks, error))
    return std::nullopt;
  twin_filter out;
  parser p{std::move(toks), out.nodes_};
  if (!p.parse(error))
    return std::nullopt;
  return out;
}

bool twin_filter::matches(std::string_view name, const patient_summary& s) const {
  if (nodes_.empty())
    return true;
  // Depth is bounded by max_filter_depth, so recursion is too.
  auto eval = [&](auto& self, uint32_t i) -> bool {
    auto& n = nodes_[i];
    switch (n.kind) {
      case node::all_of:
        return std::all_of(n.children.begin(), n.children.end(),
                           [&](uint32_t c) { return self(self, c); });
      case node::any_of:
        return std::any_of(n.children.begin(), n.children.end(),
                           [&](uint32_t c) { return self(self, c); });
      case node::negation: return !self(self, n.children[0]);
      case node::comparison: break;
    }
    switch (n.f) {
      case field::name:
      case field::ward:
      case field::bed: {
        auto v = text_of(n.f, name, s);
        if (n.prefix) {
          bool starts = v.substr(0, n.text.size()) == n.text;
          return n.o == op::eq ? starts : !starts;
        }
        return compare(v, n.o, std::string_view{n.text});
      }
      case field::news2:
        return s.news2_known && compare<int64_t>(s.news2, n.o, n.number);
      case field::news2_complete:
        return s.news2_known && compare<int64_t>(s.news2_complete, n.o, n.number);
      case field::news2_band:
        return s.news2_known && compare<int64_t>(static_cast<int64_t>(s.news2_band), n.o, n.number);
      case field::alerts_priority:
        return compare<int64_t>(static_cast<int64_t>(s.alert_priority), n.o, n.number);
      case field::alerts_count: return compare<int64_t>(s.open_alerts, n.o, n.number);
    }
    return false;
  };
  return eval(eval, static_cast<uint32_t>(nodes_.size() - 1));
}

std::optional<twin_order> twin_order::parse(std::string_view text, std::string& error) {
  twin_order out;
  std::vector<token> toks;
  if (!tokenize(text, toks, error))
    return std::nullopt;
  size_t i = 0;
  while (toks[i].kind != tok::end) {
    if (toks[i].kind != tok::word) {
      error = "expected a field at offset " + std::to_string(toks[i].pos);
      return std::nullopt;
    }
    auto* info = find_field(toks[i].text);
    if (!info || !info->orderable) {
      error = "cannot order by " + models::quoted_input(toks[i].text) + " (fields: " + field_list(true) + ")";
      return std::nullopt;
    }
    key k{static_cast<int>(info->f), false};
    ++i;
    if (toks[i].kind == tok::word && (toks[i].text == "asc" || toks[i].text == "desc")) {
      k.descending = toks[i].text == "desc";
      ++i;
    }
    out.keys_.push_back(k);
    if (out.keys_.size() > fields.size()) {
      error = "too many fields";
      return std::nullopt;
    }
    if (toks[i].kind == tok::comma && toks[i + 1].kind != tok::end) {
      ++i;
    } else if (toks[i].kind != tok::end) {
      error = "expected ',' or the end at offset " + std::to_string(toks[i].pos);
      return std::nullopt;
    }
  }
  return out;
}

bool twin_order::before(std::string_view a_name, const patient_summary& a, std::string_view b_name,
                        const patient_summary& b) const {
  for (auto& k : keys_) {
    auto& x = k.descending ? b : a;
    auto& y = k.descending ? a : b;
    auto xn = k.descending ? b_name : a_name;
    auto yn = k.descending ? a_name : b_name;
    int c = 0;
    switch (static_cast<field>(k.field)) {
      case field::name: c = xn.compare(yn); break;
      case field::ward: c = x.ward.compare(y.ward); break;
      case field::bed: c = x.bed.compare(y.bed); break;
      case field::news2: {
        // Never scored sorts below every score.
        auto sx = std::make_tuple(x.news2_known, x.news2);
        auto sy = std::make_tuple(y.news2_known, y.news2);
        c = sx < sy ? -1 : sy < sx ? 1 : 0;
        break;
      }
      case field::alerts_priority:
        c = static_cast<int>(x.alert_priority) - static_cast<int>(y.alert_priority);
        break;
      case field::alerts_count:
        c = x.open_alerts < y.open_alerts   ? -1
            : y.open_alerts < x.open_alerts ? 1
                                            : 0;
        break;
      default: break;
    }
    if (c != 0)
      return c < 0;
  }
  return a_name < b_name;
}

}  // namespace healthtwin::actors
