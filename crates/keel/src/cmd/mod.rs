//! One module per subcommand.

pub mod bench;
pub mod cache;
pub mod certs;
pub mod db;
pub mod db_proxy;
pub mod node;
pub mod seafile;
pub mod status;
pub mod up;

/// SIGTERM and SIGINT handlers, installed now (call inside the runtime, before serving): the
/// returned future completes on the first of them. Installed lazily (when first polled, as an
/// `async fn` would) they could come after the listeners were up, and a SIGTERM sent as soon as
/// the server answered killed it instead of stopping it cleanly (seen in CI).
pub fn shutdown_signals() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use anyhow::Context;
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Writes `text` to `path`, readable by its owner only: the file is created with mode 0600 (an
/// existing one is set to 0600 before it is truncated), so the secret is never readable by others.
pub fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if path.exists() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
