#pragma once
// Where the Streamable HTTP transport listens: on the socket systemd passed (socket activation,
// offload.socket), or on http.listen, bound by the daemon itself. A socket from systemd implies
// HTTP, with or without http.listen / --http, and wins over them.

#include "runtime/config.hpp"
#include "runtime/http_transport.hpp"

#include <boost/asio/io_context.hpp>

#include <optional>

namespace offload {

// Whether HTTP is served: http.listen is set or systemd passed a socket.
bool wants_http(const http_config& http);

// Builds the transport into `out` and opens its listener (adopting the socket systemd passed,
// else binding http.listen); logs which it did and prints the fixed line
// `listening on http://HOST:PORT/mcp` on stderr. Throws config_error when it cannot listen, a
// token is unusable, or the socket from systemd is not on loopback without http.allow_remote.
void open_http_transport(std::optional<http_transport>& out, boost::asio::io_context& io,
                         const http_config& http, http_session_factory spawn,
                         metrics::registry_ptr metrics);

} // namespace offload
