// Minimal JSON reader; see engine_json.h.
#include "runtime/engine_json.h"

#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>

#include "ofrt/errors.h"

namespace ofrt::json {

class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  Value parse_document() {
    Value v = parse_value();
    skip_space();
    if (pos_ != text_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ConfigError("invalid JSON", {what + " at offset " + std::to_string(pos_) + " of " +
                                       std::to_string(text_.size())});
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool consume(const char* word) {
    const std::string w(word);
    if (text_.compare(pos_, w.size(), w) != 0) return false;
    pos_ += w.size();
    return true;
  }
  Value parse_value() {
    skip_space();
    if (pos_ >= text_.size()) fail("unexpected end");
    Value v;
    const char c = text_[pos_];
    if (c == '{') return parse_object();
    if (c == '[') return parse_array();
    if (c == '"') {
      v.kind_ = Value::Kind::kString;
      v.string_ = parse_string();
    } else if (consume("true")) {
      v.kind_ = Value::Kind::kBool;
      v.bool_ = true;
    } else if (consume("false")) {
      v.kind_ = Value::Kind::kBool;
    } else if (consume("null")) {
      v.kind_ = Value::Kind::kNull;
    } else if (consume("NaN") || consume("Infinity") || consume("-Infinity")) {
      fail("non-finite numbers are not accepted");
    } else {
      v.kind_ = Value::Kind::kNumber;
      v.number_ = parse_number();
    }
    return v;
  }
  double parse_number() {
    const char* begin = text_.c_str() + pos_;
    char* end = nullptr;
    const double d = std::strtod(begin, &end);
    if (end == begin) fail("expected a value");
    pos_ += static_cast<size_t>(end - begin);
    return d;
  }
  static void append_utf8(std::string& out, unsigned code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }
  std::string parse_string() {
    std::string out;
    ++pos_;  // opening quote
    while (pos_ < text_.size() && text_[pos_] != '"') {
      char c = text_[pos_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) fail("unterminated escape");
      c = text_[pos_++];
      switch (c) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          if (pos_ + 4 > text_.size()) fail("short \\u escape");
          append_utf8(out, static_cast<unsigned>(std::stoul(text_.substr(pos_, 4), nullptr, 16)));
          pos_ += 4;
          break;
        }
        default:
          out += c;  // \" \\ \/
      }
    }
    if (pos_ >= text_.size()) fail("unterminated string");
    ++pos_;
    return out;
  }
  Value parse_array() {
    Value v;
    v.kind_ = Value::Kind::kArray;
    ++pos_;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return v;
    }
    while (true) {
      v.array_.push_back(parse_value());
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
      } else if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return v;
      } else {
        fail("expected ',' or ']'");
      }
    }
  }
  Value parse_object() {
    Value v;
    v.kind_ = Value::Kind::kObject;
    ++pos_;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return v;
    }
    while (true) {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected a key");
      std::string key = parse_string();
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != ':') fail("expected ':'");
      ++pos_;
      v.object_[key] = parse_value();
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
      } else if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return v;
      } else {
        fail("expected ',' or '}'");
      }
    }
  }

  const std::string& text_;
  size_t pos_ = 0;
};

Value Value::parse(const std::string& text) { return Parser(text).parse_document(); }

const Value* Value::find(const std::string& key) const {
  if (kind_ != Kind::kObject) return nullptr;
  const auto it = object_.find(key);
  return it == object_.end() ? nullptr : &it->second;
}

// ------------------------------------------------------------------------------ FieldReader

namespace {
const Value kNull;

bool is_integral(double d) { return std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e15; }
}  // namespace

FieldReader::FieldReader(const Value& object, std::string where)
    : object_(object), where_(std::move(where)) {
  if (!object.is_object()) problems_.push_back(where_ + " must be a JSON object");
}

const Value* FieldReader::get(const std::string& key, Value::Kind kind, const char* type_name) {
  const Value* v = object_.find(key);
  if (v == nullptr) {
    problems_.push_back(where_ + " lacks '" + key + "'");
    return nullptr;
  }
  if (v->kind() != kind) {
    problems_.push_back(where_ + "." + key + " must be " + type_name);
    return nullptr;
  }
  return v;
}

int64_t FieldReader::integer(const std::string& key) {
  const Value* v = get(key, Value::Kind::kNumber, "an integer");
  if (v == nullptr) return 0;
  if (!is_integral(v->as_number())) {
    problems_.push_back(where_ + "." + key + " must be an integer");
    return 0;
  }
  return static_cast<int64_t>(v->as_number());
}

std::optional<int64_t> FieldReader::optional_integer(const std::string& key) {
  const Value* v = object_.find(key);
  if (v != nullptr && v->is_null()) return std::nullopt;
  return integer(key);
}

double FieldReader::number(const std::string& key) {
  const Value* v = get(key, Value::Kind::kNumber, "a number");
  return v == nullptr ? 0.0 : v->as_number();
}

std::optional<double> FieldReader::optional_number(const std::string& key) {
  const Value* v = object_.find(key);
  if (v != nullptr && v->is_null()) return std::nullopt;
  return number(key);
}

std::string FieldReader::string(const std::string& key) {
  const Value* v = get(key, Value::Kind::kString, "a string");
  return v == nullptr ? std::string() : v->as_string();
}

bool FieldReader::boolean(const std::string& key) {
  const Value* v = get(key, Value::Kind::kBool, "a boolean");
  return v != nullptr && v->as_bool();
}

std::vector<int64_t> FieldReader::integer_list(const std::string& key) {
  std::vector<int64_t> out;
  const Value* v = get(key, Value::Kind::kArray, "a list of integers");
  if (v == nullptr) return out;
  for (const Value& item : v->as_array()) {
    if (!item.is_number() || !is_integral(item.as_number())) {
      problems_.push_back(where_ + "." + key + " must be a list of integers");
      return {};
    }
    out.push_back(static_cast<int64_t>(item.as_number()));
  }
  return out;
}

std::vector<double> FieldReader::number_list(const std::string& key) {
  std::vector<double> out;
  const Value* v = get(key, Value::Kind::kArray, "a list of numbers");
  if (v == nullptr) return out;
  for (const Value& item : v->as_array()) {
    if (!item.is_number()) {
      problems_.push_back(where_ + "." + key + " must be a list of numbers");
      return {};
    }
    out.push_back(item.as_number());
  }
  return out;
}

std::vector<std::string> FieldReader::string_list(const std::string& key) {
  std::vector<std::string> out;
  const Value* v = get(key, Value::Kind::kArray, "a list of strings");
  if (v == nullptr) return out;
  for (const Value& item : v->as_array()) {
    if (!item.is_string()) {
      problems_.push_back(where_ + "." + key + " must be a list of strings");
      return {};
    }
    out.push_back(item.as_string());
  }
  return out;
}

const Value& FieldReader::object(const std::string& key) {
  const Value* v = get(key, Value::Kind::kObject, "an object");
  return v == nullptr ? kNull : *v;
}

}  // namespace ofrt::json
