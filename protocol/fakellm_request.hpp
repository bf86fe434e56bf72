#pragma once
// What the fake LLM server reads from a request body: generation and pull requests, model
// names, and the fake model's answer. Pure code, unit-tested without sockets.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace offload::fakellm {

// -- generation requests -------------------------------------------------------------------------

struct message {
  std::string role;
  std::string content;
};

// A generation request of any API, reduced to what the fake needs.
struct chat_request {
  std::string model;
  std::vector<message> messages;
  bool stream = true;         // Ollama streams unless told otherwise; OpenAI does not
  bool include_usage = false; // OpenAI's stream_options.include_usage
  bool preload = false;       // Ollama: nothing to generate; load (or unload) the model only
  // Ollama's keep_alive: how long the model stays loaded; negative = forever, zero = unload.
  std::optional<std::chrono::milliseconds> keep_alive;
};

struct parsed_chat_request {
  chat_request request;
  std::string error; // why the body was rejected (a 400); empty on success

  bool ok() const { return error.empty(); }
};

// POST /api/chat. Fields the fake does not use (options, tools, ...) are ignored; a message
// without `content` (e.g. an assistant tool call) counts as empty text. No messages at all (or
// an empty list) asks Ollama to load the model.
parsed_chat_request parse_chat_request(std::string_view body);

// POST /api/generate: `system` and `prompt` become a system and a user message. Neither prompt
// nor system asks Ollama to load the model.
parsed_chat_request parse_generate_request(std::string_view body);

// POST /v1/chat/completions. `content` may be a string or a list of parts, whose text parts are
// joined; `stream` is off unless asked for.
parsed_chat_request parse_openai_chat_request(std::string_view body);

// Ollama's keep_alive as text: a Go duration ("5m", "1h30m", "-1s", "0") or a number of seconds.
std::optional<std::chrono::milliseconds> parse_keep_alive(std::string_view text);

// -- pulls ---------------------------------------------------------------------------------------

struct pull_request {
  std::string model;
  bool stream = true;
};

struct parsed_pull_request {
  pull_request request;
  std::string error; // a 400; empty on success

  bool ok() const { return error.empty(); }
};

// POST /api/pull: the model in `model` (or the older `name`).
parsed_pull_request parse_pull_request(std::string_view body);

// Whether `name` looks like a model reference Ollama would try to pull: [host/][namespace/]name
// [:tag], of letters, digits and `._-` only.
bool is_valid_model_name(std::string_view name);

// -- models and answers --------------------------------------------------------------------------

// The entry of `served` that `requested` names, with Ollama's rule that a name without a tag
// means ":latest"; nothing when the fake does not serve it.
std::optional<std::string> find_served_model(const std::vector<std::string>& served,
                                             std::string_view requested);

bool serves_model(const std::vector<std::string>& served, std::string_view requested);

// The fake model's answer: the last user message verbatim (markers included), so every result
// shows which task it answers. Empty when there is no user message.
std::string_view reply_to(const chat_request& request);

// Number of whitespace-separated words: the fake's notion of a token.
size_t count_words(std::string_view text);

// Prompt tokens of a request: the words of all messages, whatever their role.
size_t count_prompt_words(const std::vector<message>& messages);

// Splits a reply into stream pieces of one word plus the whitespace after it (leading whitespace
// joins the first piece), so concatenating the pieces gives back the reply exactly. An empty
// reply has no pieces.
std::vector<std::string_view> split_pieces(std::string_view reply);

} // namespace offload::fakellm
