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
  case errc::queue_full:
    return "queue_full";
  case errc::skipped:
    return "skipped";
  case errc::backend_overloaded:
    return "backend_overloaded";
  case errc::model_loading:
    return "model_loading";
  case errc::context_too_long:
    return "context_too_long";
  case errc::prompt_injection:
    return "prompt_injection";
  case errc::backend_unavailable:
    return "backend_unavailable";
  case errc::task_killed:
    return "task_killed";
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
  case errc::queue_full:
  case errc::backend_overloaded:
  case errc::model_loading:
  case errc::backend_unavailable:
  case errc::task_killed:
    return true;
  default:
    return false;
  }
}

} // namespace offload
