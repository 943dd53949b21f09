//! (placeholder, filled in by the work on issue 3)

#[derive(clap::Args)]
pub struct Args {}

#[derive(clap::Args)]
pub struct DownArgs {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

pub fn down(_args: DownArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
