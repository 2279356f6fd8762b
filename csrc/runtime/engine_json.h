// A minimal JSON reader for the engine's config and package manifest (design.md §4: config
// crosses from Python as the JSON string of EngineConfig.to_json(); one source of truth, one
// parser). It reads the subset json.dumps writes: objects, arrays, strings with escapes, numbers,
// true/false/null. Numbers are parsed with strtod, so Python's repr of a float round-trips
// exactly. Private to the runtime (no public header): callers use config.h.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ofrt::json {

//! One JSON value (a small tagged union; objects keep keys sorted, which nothing relies on).
class Value {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  Value() = default;
  static Value parse(const std::string& text);  //!< ConfigError on malformed text

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_number() const { return kind_ == Kind::kNumber; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_bool() const { return kind_ == Kind::kBool; }

  bool as_bool() const { return bool_; }
  double as_number() const { return number_; }
  const std::string& as_string() const { return string_; }
  const std::vector<Value>& as_array() const { return array_; }
  const std::map<std::string, Value>& as_object() const { return object_; }
  //! Member `key` of an object, or nullptr when absent (or not an object).
  const Value* find(const std::string& key) const;

 private:
  friend class Parser;
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  double number_ = 0.0;
  std::string string_;
  std::vector<Value> array_;
  std::map<std::string, Value> object_;
};

//! Reads typed fields from one JSON object and collects every problem instead of throwing at the
//! first, so the caller raises one ConfigError listing them all (design.md §5).
class FieldReader {
 public:
  FieldReader(const Value& object, std::string where);

  int64_t integer(const std::string& key);
  std::optional<int64_t> optional_integer(const std::string& key);
  double number(const std::string& key);
  std::optional<double> optional_number(const std::string& key);
  std::string string(const std::string& key);
  bool boolean(const std::string& key);
  std::vector<int64_t> integer_list(const std::string& key);
  std::vector<double> number_list(const std::string& key);
  std::vector<std::string> string_list(const std::string& key);
  //! The member object `key` (a null Value when missing, with a problem recorded).
  const Value& object(const std::string& key);

  void add_problem(const std::string& problem) { problems_.push_back(problem); }
  std::vector<std::string>& problems() { return problems_; }

 private:
  const Value* get(const std::string& key, Value::Kind kind, const char* type_name);
  const Value& object_;
  std::string where_;
  std::vector<std::string> problems_;
};

}  // namespace ofrt::json
