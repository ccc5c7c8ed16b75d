"""HTTP server: routes, error mapping, and the app factory that wires everything together."""
