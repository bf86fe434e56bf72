#include "runtime/http_admin.hpp"

#include "protocol/llm_errors.hpp"
#include "protocol/openai.hpp"
#include "runtime/http_fetch.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <atomic>

namespace offload {

namespace {

using json = nlohmann::json;

admin_result failure(task_error error) {
  admin_result result;
  result.error = std::move(error);
  return result;
}

class http_admin : public endpoint_admin, public std::enable_shared_from_this<http_admin> {
public:
  http_admin(boost::asio::io_context& io, backend_kind kind, http_target target,
             admin_options options)
      : io_(io)
      , kind_(kind)
      , target_(std::move(target))
      , options_(std::move(options)) {}

  std::shared_ptr<llm_exchange> probe(done_fn done) override {
    if (kind_ == backend_kind::ollama)
      return get(target_.base_path + "/api/version",
                 [done = std::move(done)](fetch_result r) { done(version_probe(r)); });
    if (no_health_endpoint_)
      return probe_models(std::move(done));
    // llama.cpp and vLLM serve /health at the root, even when configured with a /v1 base URL.
    return get(root_path() + "/health",
               [self = shared_from_this(), done = std::move(done)](fetch_result r) mutable {
                 if (r.ok && (r.status == 404 || r.status == 405)) {
                   // LM Studio, LocalAI and others have no /health: the model list shows it is up.
                   self->no_health_endpoint_ = true;
                   self->probe_models(std::move(done));
                   return;
                 }
                 done(health_probe(r));
               });
  }

  std::shared_ptr<llm_exchange> list_models(done_fn done) override {
    return get(models_path(), [kind = kind_, done = std::move(done)](fetch_result r) {
      auto checked = answered(r, kind);
      if (!checked.ok) {
        done(std::move(checked));
        return;
      }
      std::string error;
      auto names = kind == backend_kind::ollama ? ollama::parse_tags(r.body, error)
                                                : openai::parse_models(r.body, error);
      if (!names) {
        done(failure({errc::malformed_stream, error, false}));
        return;
      }
      checked.models = std::move(*names);
      done(std::move(checked));
    });
  }

  std::shared_ptr<llm_exchange> loaded_models(done_fn done) override {
    if (kind_ == backend_kind::openai)
      return list_models([done = std::move(done)](admin_result r) {
        if (r.ok) {
          for (auto& name : r.models)
            r.loaded.push_back(ollama::loaded_model{std::move(name), 0, 0, "", 0});
          r.models.clear();
          r.detail = "the OpenAI-compatible API lists the models the server offers; it does not "
                     "say which are in memory";
        }
        done(std::move(r));
      });
    return get(target_.base_path + "/api/ps", [done = std::move(done)](fetch_result r) {
      auto checked = answered(r, backend_kind::ollama);
      if (!checked.ok) {
        done(std::move(checked));
        return;
      }
      std::string error;
      auto loaded = ollama::parse_ps(r.body, error);
      if (!loaded) {
        done(failure({errc::malformed_stream, error, false}));
        return;
      }
      checked.loaded = std::move(*loaded);
      done(std::move(checked));
    });
  }

  std::shared_ptr<llm_exchange> preload(std::string model, std::string keep_alive,
                                        done_fn done) override {
    if (kind_ != backend_kind::ollama) {
      done(unsupported("preload models"));
      return nullptr;
    }
    auto pinned = ollama::options_for(options_.model_options, model);
    if (keep_alive.empty())
      keep_alive = pinned.keep_alive.empty() ? defaults::preload_keep_alive : pinned.keep_alive;
    auto body = ollama::make_preload_body(model, keep_alive, pinned.num_ctx);
    return fetch(io_, target_, "POST", target_.base_path + "/api/chat", std::move(body),
                 options_.preload_timeout, [keep_alive, done = std::move(done)](fetch_result r) {
                   auto checked = answered(r, backend_kind::ollama);
                   if (!checked.ok) {
                     done(std::move(checked));
                     return;
                   }
                   // One object ({"done": true, "done_reason": "load"}) or an error in it.
                   ollama::chat_stream_parser parser;
                   parser.feed(r.body);
                   parser.finish();
                   if (parser.failed()) {
                     done(failure(parser.error()));
                     return;
                   }
                   checked.detail = keep_alive;
                   done(std::move(checked));
                 });
  }

  std::shared_ptr<llm_exchange> pull(std::string model, std::function<void(pull_update)> progress,
                                     done_fn done) override {
    if (kind_ != backend_kind::ollama) {
      done(unsupported("pull models"));
      return nullptr;
    }
    // Both callbacks run on the I/O thread, one after the other: the parser needs no lock.
    auto parser = std::make_shared<ollama::pull_progress_parser>();
    auto on_body = [parser, progress = std::move(progress)](std::string_view bytes) {
      auto before = parser->updates();
      parser->feed(bytes);
      if (parser->updates() != before)
        progress(
            pull_update{parser->latest().status, parser->completed_bytes(), parser->total_bytes()});
    };
    return fetch_stream(io_, target_, "POST", target_.base_path + "/api/pull",
                        ollama::make_pull_body(model), options_.pull_timeout,
                        options_.pull_idle_timeout, std::move(on_body),
                        [parser, done = std::move(done)](fetch_result r) {
                          auto checked = answered(r, backend_kind::ollama);
                          if (!checked.ok) {
                            done(std::move(checked));
                            return;
                          }
                          parser->finish();
                          if (parser->failed()) {
                            done(failure(parser->error()));
                            return;
                          }
                          checked.detail = parser->latest().status;
                          done(std::move(checked));
                        });
  }

private:
  // A transport failure, or a non-2xx status classified the way the server kind words it;
  // otherwise ok (the caller reads the body).
  static admin_result answered(const fetch_result& r, backend_kind kind) {
    if (!r.ok)
      return failure(r.error);
    if (r.status / 100 != 2)
      return failure(kind == backend_kind::ollama
                         ? ollama::error_from_status(r.status, r.body, r.retry_after_ms)
                         : openai::error_from_status(r.status, r.body, r.retry_after_ms));
    admin_result ok;
    ok.ok = true;
    ok.health = probe_status::up;
    return ok;
  }

  // A 503 "Loading model" (llama.cpp, and the fake LLM on both APIs) means up but not ready.
  static admin_result loading_or_failure(const fetch_result& r, backend_kind kind) {
    auto checked = answered(r, kind);
    if (!checked.ok && checked.error.code == errc::model_loading) {
      checked.ok = true;
      checked.health = probe_status::loading;
      checked.detail = checked.error.message;
      checked.error = {};
    }
    return checked;
  }

  static admin_result version_probe(const fetch_result& r) {
    auto checked = loading_or_failure(r, backend_kind::ollama);
    if (checked.ok && checked.health == probe_status::up) {
      auto body = json::parse(r.body, nullptr, false);
      if (body.is_object() && body.contains("version") && body["version"].is_string())
        checked.detail = "version " + body["version"].get<std::string>();
    }
    return checked;
  }

  static admin_result health_probe(const fetch_result& r) {
    return loading_or_failure(r, backend_kind::openai);
  }

  std::shared_ptr<llm_exchange> probe_models(done_fn done) {
    return get(models_path(), [done = std::move(done)](fetch_result r) {
      done(loading_or_failure(r, backend_kind::openai));
    });
  }

  std::shared_ptr<llm_exchange> get(std::string path, std::function<void(fetch_result)> done) {
    return fetch(io_, target_, "GET", std::move(path), {}, options_.probe_timeout, std::move(done));
  }

  std::string models_path() const {
    return kind_ == backend_kind::ollama ? target_.base_path + "/api/tags"
                                         : openai::api_path(target_.base_path, "models");
  }

  std::string root_path() const {
    constexpr std::string_view v1 = "/v1";
    std::string_view base = target_.base_path;
    if (base.size() >= v1.size() && base.substr(base.size() - v1.size()) == v1)
      base.remove_suffix(v1.size());
    return std::string{base};
  }

  admin_result unsupported(std::string_view what) const {
    return failure({errc::invalid_argument,
                    fmt::format("{} speaks the OpenAI-compatible API, which cannot {}; this "
                                "needs an Ollama backend",
                                target_.display(), what),
                    false});
  }

  boost::asio::io_context& io_;
  backend_kind kind_;
  http_target target_;
  admin_options options_;
  // Learnt on the I/O thread, read where probes start: hence atomic.
  std::atomic<bool> no_health_endpoint_{false};
};

} // namespace

std::shared_ptr<endpoint_admin> make_endpoint_admin(boost::asio::io_context& io, backend_kind kind,
                                                    http_target target, admin_options options) {
  return std::make_shared<http_admin>(io, kind, std::move(target), std::move(options));
}

} // namespace offload
