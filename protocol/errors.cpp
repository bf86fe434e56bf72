#include "protocol/errors.hpp"

namespace offload {

std::string_view to_string(errc code) {
  switch (code) {
  case errc::no_error:
    return "no_error";
  case errc::invalid_argument:
    return "invalid_argument";
  case errc::backend_unreachable:
    return "backend_unreachable";
  case errc::backend_http_error:
    return "backend_http_error";
  case errc::backend_error:
    return "backend_error";
  case errc::model_not_found:
    return "model_not_found";
  case errc::malformed_stream:
    return "malformed_stream";
  case errc::connection_dropped:
    return "connection_dropped";
  case errc::timeout:
    return "timeout";
  case errc::task_crashed:
    return "task_crashed";
  case errc::cancelled:
    return "cancelled";
  case errc::no_backend:
    return "no_backend";
  case errc::internal:
    return "internal";
  }
  return "unknown";
}

bool is_retryable(errc code) {
  switch (code) {
  case errc::backend_unreachable:
  case errc::backend_http_error:
  case errc::connection_dropped:
  case errc::timeout:
  case errc::task_crashed:
    return true;
  default:
    return false;
  }
}

} // namespace offload
