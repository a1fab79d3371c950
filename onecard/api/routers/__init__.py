"""HTTP routers: each parses input, calls one domain function and maps the result."""
