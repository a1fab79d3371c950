"""HTTP and command-line surface: the FastAPI app factory, routers, auth dependencies, pages,
and the ``onecard`` CLI. Nothing else in onecard imports this package."""
