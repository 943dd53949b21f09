//! Listener, connection limit, background tasks and graceful shutdown.
