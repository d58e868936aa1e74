"""Provider adapters behind one interface; `registry` is the only place that knows their names."""
