//! (placeholder, filled in by the work on issue 3)

#[derive(clap::Subcommand)]
pub enum DbCommand {}

pub fn run(c: DbCommand) -> anyhow::Result<()> {
    match c {}
}
