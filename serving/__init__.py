"""Small pieces shared by the two HTTP front ends (the MCP server and the dashboard): loopback checks,
binding a listening socket, logging to stderr."""

from serving.net import bind_socket, configure_logging, is_loopback_host

__all__ = ["bind_socket", "configure_logging", "is_loopback_host"]
