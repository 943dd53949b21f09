//! One module per subcommand.

pub mod bench;
pub mod cache;
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
