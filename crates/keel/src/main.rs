//! The `keel` command: one binary for the whole tier (`keel cache`, and later `keel node`,
//! `keel up`, `keel db-proxy`, `keel status`, `keel bench`).

fn main() {}
