//! Real Redis clients against keel and redis-server (filled in below).
