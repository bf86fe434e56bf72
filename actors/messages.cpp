#include "actors/messages.hpp"

#include <caf/atom.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace offload {

namespace {

constexpr caf::atom_value category = caf::atom("offload");

} // namespace

caf::error to_caf_error(const task_error& err, std::string_view backend) {
  return caf::error{
      static_cast<uint8_t>(err.code), category,
      caf::make_message(err.message, err.retryable, std::string{backend}, err.retry_after_ms)};
}

task_error from_caf_error(const caf::error& err, std::string* backend) {
  if (err.category() == category) {
    auto code = static_cast<errc>(err.code());
    task_error out{code, std::string{to_string(code)}, is_retryable(code)};
    const auto& ctx = err.context();
    if (ctx.match_elements<std::string, bool, std::string, int64_t>()) {
      out.message = ctx.get_as<std::string>(0);
      out.retryable = ctx.get_as<bool>(1);
      if (backend != nullptr)
        *backend = ctx.get_as<std::string>(2);
      out.retry_after_ms = ctx.get_as<int64_t>(3);
    }
    return out;
  }
  if (err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
    case caf::sec::request_timeout:
      return {errc::timeout, "the task did not finish within its time limit", true};
    case caf::sec::request_receiver_down:
      return {errc::backend_unavailable,
              "the backend handling the request stopped before answering", true};
    default:
      break;
    }
  }
  return {errc::internal, "unexpected internal error: " + caf::to_string(err), false};
}

std::string describe_exception(const std::exception_ptr& eptr) {
  try {
    std::rethrow_exception(eptr);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "unknown exception";
}

} // namespace offload
