#pragma once
// One HTTP/1.1 connection of `offload fakellm`: reads requests, asks protocol/fakellm_* what to
// answer, and writes the planned frames out with their delays, holding a slot while generating.
// fakellm_session.cpp has the HTTP and generation side, fakellm_session_faults.cpp the fault
// plans, fakellm_session_proxy.cpp record and replay.

#include "protocol/fakellm_ollama.hpp"
#include "protocol/fakellm_recording.hpp"
#include "protocol/fakellm_request.hpp"
#include "protocol/fakellm_response.hpp"
#include "protocol/fakellm_route.hpp"
#include "protocol/fakellm_script.hpp"
#include "protocol/fakellm_state.hpp"
#include "runtime/fakellm_server.hpp"
#include "runtime/fakellm_upstream.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <memory>
#include <optional>
#include <string>

namespace offload::fakellm_detail {

class session : public std::enable_shared_from_this<session> {
public:
  session(boost::asio::ip::tcp::socket&& socket, server_state& server);

  // A session that dies holding a slot (e.g. the server stops) must not leak it.
  ~session();

  // Everything runs on the one io_context thread, which serialises handlers the way a strand
  // would in Beast's multi-threaded example.
  void run() { do_read(); }

private:
  using http_request = boost::beast::http::request<boost::beast::http::string_body>;

  enum class phase { reading, queued, delaying, hanging, writing, pausing, relaying, closed };
  // What a watch that was cancelled on purpose hands over to once it has completed.
  enum class after_watch { nothing, generate, write_frames };

  // -- fakellm_session.cpp: requests, generation, writing
  void do_read();
  void on_read(boost::beast::error_code ec, size_t);
  void reject_while_loading(const fakellm::route& route);
  void dispatch(fakellm::endpoint target, const std::string& body);
  std::vector<fakellm::running_model> running_models() const;
  void handle_pull(const std::string& body);
  void handle_generation(fakellm::dialect dialect, const std::string& body);
  void on_slot_granted();
  void on_wait_elapsed(boost::beast::error_code ec);
  void do_watch();
  void on_watch(boost::beast::error_code ec, size_t bytes);
  void stop_watching_then(after_watch next);
  void continue_with(after_watch next);
  void client_gone(boost::beast::error_code ec);
  void generate();
  void send_error(fakellm::api_family family, fakellm::error_kind kind, std::string message,
                  std::string_view allow = {});
  void send_plan(fakellm::response_plan plan);
  void write_frames(bool waited);
  void on_write(boost::beast::error_code ec, size_t);
  void on_pause_elapsed(boost::beast::error_code ec);
  void release_slot();
  void do_close();

  // -- fakellm_session_faults.cpp: fault plans
  // The action for the generation request in chat_: its markers', else the plan's.
  fakellm::action choose_action(fakellm::dialect dialect);
  // A request to an endpoint with a fixed answer, which a plan rule may fail, delay or hang.
  void handle_fixed(const fakellm::route& route, const std::string& body);
  void finish_fixed();
  void handle_put_plan(const http_request& request);

  // -- fakellm_session_proxy.cpp: record and replay
  void handle_proxied(const fakellm::route& route, const http_request& request);
  void replay(const http_request& request, const std::string& key);
  void record(const http_request& request, const std::string& key, const std::string& canonical);
  void on_upstream_head(const upstream_head& head);
  void on_upstream_data(std::string_view data);
  void on_upstream_end(bool complete, const std::string& error);

  boost::beast::tcp_stream stream_;
  server_state& server_;
  boost::asio::steady_timer timer_; // the wait before a response, or between its frames
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>>
      parser_;       // fresh per request
  std::string wire_; // bytes being written
  phase phase_ = phase::reading;
  bool keep_alive_ = false;
  fakellm::dialect dialect_ = fakellm::dialect::ollama_chat;
  fakellm::chat_request chat_;
  std::string served_model_; // the --models entry chat_.model names
  fakellm::action action_;
  fakellm::response_plan plan_;                      // the response being written
  size_t next_frame_ = 0;                            // the first frame of plan_ not yet written
  std::optional<fakellm::slot_pool::ticket> ticket_; // our place in the slot queue
  bool holding_slot_ = false;
  bool watching_ = false; // a disconnect-watching read is pending
  after_watch after_watch_ = after_watch::nothing;
  // A fixed-answer request a plan rule delays, hangs or fails: its endpoint and error shape.
  std::optional<fakellm::route> fixed_;

  // Record and replay mode: the error shape of the request being relayed.
  fakellm::api_family proxied_family_ = fakellm::api_family::ollama;
  // Record mode: the exchange in progress; the call holds this session, not the other way round.
  std::weak_ptr<upstream_call> upstream_;
  fakellm::recorded_exchange recording_;
  std::chrono::steady_clock::time_point recording_started_;
  std::string held_back_;   // received bytes that end inside a UTF-8 sequence
  bool relay_open_ = false; // streaming the upstream's body: more frames may come
};

} // namespace offload::fakellm_detail
