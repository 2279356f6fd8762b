// Python-compatible text formatting, so C++ error messages match the Python ones word for word.
//
// The Python side builds its ConfigError problems with f-strings; the C++ mirror in
// runtime/block_schedule.cc must produce the same text, so the tests can compare problem lists
// exactly. These helpers reproduce the handful of Python formatting rules those messages use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ofrt::py_format {

//! repr(float): shortest round-trip digits, exponent form when the decimal exponent is < -4 or
//! >= 16 ("1e-05", "1e+16"), otherwise fixed with at least one fractional digit ("2.0");
//! "inf", "-inf", "nan".
std::string float_repr(double value);

//! f"{value:.{digits}f}" (correctly rounded, like printf).
std::string fixed(double value, int digits);

//! repr(str) for the common cases: single quotes unless the text has ' and no ", backslash and
//! the quote escaped, \t \n \r and other control bytes escaped; bytes >= 0x80 (UTF-8) verbatim.
std::string str_repr(std::string_view text);

//! repr(list[int]): "[1000, 909, 0]", "[]".
std::string int_list_repr(const std::vector<int64_t>& values);

}  // namespace ofrt::py_format
