//! (placeholder: `keel bench cache`)

#[derive(clap::Subcommand)]
pub enum BenchCommand {}

pub fn run(c: BenchCommand) -> anyhow::Result<()> {
    match c {}
}
