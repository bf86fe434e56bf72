#pragma once
// CAF 0.17 has no CAF_CHECK_MESSAGE: a check that also says which case of a table failed.

#include <caf/test/unit_test.hpp>

#define CHECK_CASE(condition, what)                                                                \
  do {                                                                                             \
    if (!(condition))                                                                              \
      CAF_ERROR("failed for: " << what);                                                           \
    CAF_CHECK(condition);                                                                          \
  } while (false)
