"""Use cases: each takes `services` and a request, works through the store, returns a result."""
