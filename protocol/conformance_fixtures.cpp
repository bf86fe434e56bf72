#include "protocol/conformance_fixtures.hpp"

#include <array>

namespace offload::conformance {

namespace {

// A 1x1 PNG and a silent 8-sample WAV: the smallest valid payloads of their types.
constexpr std::string_view png_base64 =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
constexpr std::string_view wav_base64 =
    "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA";

constexpr std::string_view static_text_uri = "test://static-text";
constexpr std::string_view static_binary_uri = "test://static-binary";
constexpr std::string_view watched_uri = "test://watched-resource";
constexpr std::string_view template_prefix = "test://template/";
constexpr std::string_view template_suffix = "/data";

json no_arguments() {
  return {{"type", "object"}, {"properties", json::object()}};
}

json one_string_argument(std::string_view name, std::string_view description) {
  return {{"type", "object"},
          {"properties", {{name, {{"type", "string"}, {"description", description}}}}},
          {"required", {name}}};
}

json tool(std::string_view name, std::string_view description, json input_schema) {
  return {{"name", name}, {"description", description}, {"inputSchema", std::move(input_schema)}};
}

json text_block(std::string_view text) {
  return {{"type", "text"}, {"text", text}};
}

json image_block() {
  return {{"type", "image"}, {"data", png_base64}, {"mimeType", "image/png"}};
}

json embedded_text(std::string_view uri, std::string_view text) {
  return {{"type", "resource"},
          {"resource", {{"uri", uri}, {"mimeType", "text/plain"}, {"text", text}}}};
}

json content(json blocks, bool is_error = false) {
  return {{"content", std::move(blocks)}, {"isError", is_error}};
}

std::string string_or_empty(const json& args, const char* key) {
  if (args.is_object())
    if (auto it = args.find(key); it != args.end() && it->is_string())
      return it->get<std::string>();
  return {};
}

// The id of a template URI test://template/{id}/data, or nullopt.
std::optional<std::string> template_id(std::string_view uri) {
  if (uri.size() <= template_prefix.size() + template_suffix.size() ||
      uri.substr(0, template_prefix.size()) != template_prefix ||
      uri.substr(uri.size() - template_suffix.size()) != template_suffix)
    return std::nullopt;
  auto id = uri.substr(template_prefix.size(),
                       uri.size() - template_prefix.size() - template_suffix.size());
  if (id.find('/') != std::string_view::npos)
    return std::nullopt;
  return std::string{id};
}

} // namespace

void add_capabilities(json& initialize_result) {
  auto& caps = initialize_result["capabilities"];
  caps["resources"] = {{"subscribe", true}, {"listChanged", false}};
  caps["prompts"] = {{"listChanged", false}};
  caps["completions"] = json::object();
}

json tools() {
  json address = {
      {"type", "object"},
      {"properties", {{"street", {{"type", "string"}}}, {"city", {{"type", "string"}}}}}};
  json schema_2020_12 = {
      {"$schema", "https://json-schema.org/draft/2020-12/schema"},
      {"type", "object"},
      {"$defs", {{"address", address}}},
      {"properties", {{"name", {{"type", "string"}}}, {"address", {{"$ref", "#/$defs/address"}}}}},
      {"additionalProperties", false},
  };
  return json::array({
      tool("test_simple_text", "Returns one text block", no_arguments()),
      tool("test_image_content", "Returns one PNG image block", no_arguments()),
      tool("test_audio_content", "Returns one WAV audio block", no_arguments()),
      tool("test_embedded_resource", "Returns an embedded text resource", no_arguments()),
      tool("test_multiple_content_types", "Returns text, image and resource blocks",
           no_arguments()),
      tool("test_tool_with_logging", "Sends three log notifications while it runs", no_arguments()),
      tool("test_error_handling", "Always fails with a tool error", no_arguments()),
      tool("test_tool_with_progress", "Reports three increasing progress values", no_arguments()),
      tool("test_sampling", "Asks the client's LLM to answer a prompt",
           one_string_argument("prompt", "The prompt to send to the LLM")),
      tool("test_elicitation", "Asks the user for a username and an email address",
           one_string_argument("message", "The message to show the user")),
      tool("test_elicitation_sep1034_defaults",
           "Asks the user for values of every primitive type, each with a default", no_arguments()),
      tool("test_elicitation_sep1330_enums", "Asks the user to pick from every kind of enum",
           no_arguments()),
      tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", schema_2020_12),
      tool("test_reconnection", "Answers on the stream a reconnecting client resumes",
           no_arguments()),
  });
}

bool is_tool(std::string_view name) {
  for (const auto& t : tools())
    if (t["name"] == name)
      return true;
  return false;
}

std::optional<json> static_tool_result(std::string_view name) {
  if (name == "test_simple_text")
    return content({text_block("This is a simple text response for testing.")});
  if (name == "test_image_content")
    return content({image_block()});
  if (name == "test_audio_content")
    return content({{{"type", "audio"}, {"data", wav_base64}, {"mimeType", "audio/wav"}}});
  if (name == "test_embedded_resource")
    return content(
        {embedded_text("test://embedded-resource", "This is an embedded resource content.")});
  if (name == "test_multiple_content_types")
    return content({text_block("Multiple content types test:"), image_block(),
                    embedded_text("test://mixed-content-resource", "Mixed content resource.")});
  if (name == "test_error_handling")
    return content({text_block("This tool intentionally returns an error for testing")}, true);
  if (name == "json_schema_2020_12_tool")
    return content({text_block("JSON Schema 2020-12 tool called")});
  if (name == "test_reconnection")
    return content({text_block("Reconnection test completed successfully")});
  return std::nullopt;
}

json sampling_request(const json& args) {
  return {
      {"messages", {{{"role", "user"}, {"content", text_block(string_or_empty(args, "prompt"))}}}},
      {"maxTokens", 100}};
}

json elicitation_request(const json& args) {
  return {{"message", string_or_empty(args, "message")},
          {"requestedSchema",
           {{"type", "object"},
            {"properties",
             {{"username", {{"type", "string"}, {"description", "User's response"}}},
              {"email", {{"type", "string"}, {"description", "User's email address"}}}}},
            {"required", {"username", "email"}}}}};
}

json elicitation_defaults_request() {
  return {
      {"message", "Please review the defaults and accept or change them"},
      {"requestedSchema",
       {{"type", "object"},
        {"properties",
         {{"name", {{"type", "string"}, {"description", "User name"}, {"default", "John Doe"}}},
          {"age", {{"type", "integer"}, {"description", "User age"}, {"default", 30}}},
          {"score", {{"type", "number"}, {"description", "User score"}, {"default", 95.5}}},
          {"status",
           {{"type", "string"},
            {"description", "User status"},
            {"enum", {"active", "inactive", "pending"}},
            {"default", "active"}}},
          {"verified",
           {{"type", "boolean"}, {"description", "Verification status"}, {"default", true}}}}}}}};
}

json elicitation_enums_request() {
  auto titled = [](std::string_view second_word) {
    json options = json::array();
    const std::array<std::string_view, 3> ordinals = {"First", "Second", "Third"};
    for (size_t i = 0; i < ordinals.size(); ++i)
      options.push_back({{"const", "value" + std::to_string(i + 1)},
                         {"title", std::string{ordinals[i]} + " " + std::string{second_word}}});
    return options;
  };
  json untitled = {"option1", "option2", "option3"};
  return {{"message", "Please pick from each kind of list"},
          {"requestedSchema",
           {{"type", "object"},
            {"properties",
             {{"untitledSingle", {{"type", "string"}, {"enum", untitled}}},
              {"titledSingle", {{"type", "string"}, {"oneOf", titled("Option")}}},
              {"legacyEnum",
               {{"type", "string"},
                {"enum", {"opt1", "opt2", "opt3"}},
                {"enumNames", {"Option One", "Option Two", "Option Three"}}}},
              {"untitledMulti",
               {{"type", "array"}, {"items", {{"type", "string"}, {"enum", untitled}}}}},
              {"titledMulti", {{"type", "array"}, {"items", {{"anyOf", titled("Choice")}}}}}}}}}};
}

json resource_list() {
  return {{"resources",
           {{{"uri", static_text_uri},
             {"name", "static-text"},
             {"description", "A static text resource"},
             {"mimeType", "text/plain"}},
            {{"uri", static_binary_uri},
             {"name", "static-binary"},
             {"description", "A static PNG image"},
             {"mimeType", "image/png"}},
            {{"uri", watched_uri},
             {"name", "watched-resource"},
             {"description", "A resource clients may subscribe to"},
             {"mimeType", "text/plain"}}}}};
}

json resource_template_list() {
  return {{"resourceTemplates",
           {{{"uriTemplate", "test://template/{id}/data"},
             {"name", "template-data"},
             {"description", "JSON data for any id"},
             {"mimeType", "application/json"}}}}};
}

std::optional<json> read_resource(std::string_view uri) {
  json item;
  if (uri == static_text_uri)
    item = {{"uri", uri},
            {"mimeType", "text/plain"},
            {"text", "This is the content of the static text resource."}};
  else if (uri == static_binary_uri)
    item = {{"uri", uri}, {"mimeType", "image/png"}, {"blob", png_base64}};
  else if (uri == watched_uri)
    item = {{"uri", uri}, {"mimeType", "text/plain"}, {"text", "Watched resource content."}};
  else if (auto id = template_id(uri))
    item = {{"uri", uri},
            {"mimeType", "application/json"},
            {"text",
             json{{"id", *id}, {"templateTest", true}, {"data", "Data for ID: " + *id}}.dump()}};
  else
    return std::nullopt;
  return json{{"contents", json::array({std::move(item)})}};
}

bool is_resource(std::string_view uri) {
  return read_resource(uri).has_value();
}

json prompt_list() {
  auto argument = [](std::string_view name, std::string_view description) {
    return json{{"name", name}, {"description", description}, {"required", true}};
  };
  return {{"prompts",
           {{{"name", "test_simple_prompt"}, {"description", "A prompt without arguments"}},
            {{"name", "test_prompt_with_arguments"},
             {"description", "A prompt with two arguments"},
             {"arguments",
              {argument("arg1", "First test argument"), argument("arg2", "Second test argument")}}},
            {{"name", "test_prompt_with_embedded_resource"},
             {"description", "A prompt embedding a resource"},
             {"arguments", {argument("resourceUri", "URI of the resource to embed")}}},
            {{"name", "test_prompt_with_image"}, {"description", "A prompt with an image"}}}}};
}

std::optional<json> get_prompt(std::string_view name, const json& args, std::string& error) {
  auto user = [](json block) { return json{{"role", "user"}, {"content", std::move(block)}}; };
  auto required = [&](const char* key) -> std::optional<std::string> {
    if (args.is_object())
      if (auto it = args.find(key); it != args.end() && it->is_string())
        return it->get<std::string>();
    error = "prompts/get: " + std::string{name} + " needs the argument " + key;
    return std::nullopt;
  };
  if (name == "test_simple_prompt")
    return json{{"messages", {user(text_block("This is a simple prompt for testing."))}}};
  if (name == "test_prompt_with_arguments") {
    auto arg1 = required("arg1");
    auto arg2 = arg1 ? required("arg2") : std::nullopt;
    if (!arg2)
      return std::nullopt;
    return json{
        {"messages",
         {user(text_block("Prompt with arguments: arg1='" + *arg1 + "', arg2='" + *arg2 + "'"))}}};
  }
  if (name == "test_prompt_with_embedded_resource") {
    auto uri = required("resourceUri");
    if (!uri)
      return std::nullopt;
    return json{{"messages",
                 {user(embedded_text(*uri, "Embedded resource content for testing.")),
                  user(text_block("Please process the embedded resource above."))}}};
  }
  if (name == "test_prompt_with_image")
    return json{
        {"messages", {user(image_block()), user(text_block("Please analyze the image above."))}}};
  error = "prompts/get: unknown prompt " + json(name).dump() + "; see prompts/list";
  return std::nullopt;
}

json complete(const json& params) {
  json values = json::array();
  const json* ref = nullptr;
  const json* argument = nullptr;
  if (params.is_object()) {
    if (auto it = params.find("ref"); it != params.end() && it->is_object())
      ref = &*it;
    if (auto it = params.find("argument"); it != params.end() && it->is_object())
      argument = &*it;
  }
  if (ref != nullptr && argument != nullptr && ref->value("type", "") == "ref/prompt" &&
      ref->value("name", "") == "test_prompt_with_arguments" &&
      argument->value("name", "") == "arg1") {
    auto prefix = argument->value("value", "");
    for (std::string_view candidate : {"paris", "park", "party", "test", "testing"})
      if (candidate.substr(0, prefix.size()) == prefix)
        values.push_back(candidate);
  }
  return {{"completion", {{"values", values}, {"total", values.size()}, {"hasMore", false}}}};
}

} // namespace offload::conformance
