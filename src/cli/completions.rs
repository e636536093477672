//! `edgeloop completions SHELL`: prints a shell completion script (bash, zsh, fish, elvish,
//! PowerShell) generated from the CLI definition, so it never goes stale.

use clap::CommandFactory;

/// Arguments of `edgeloop completions`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  edgeloop completions bash > ~/.local/share/bash-completion/completions/edgeloop\n  \
edgeloop completions zsh > \"${fpath[1]}/_edgeloop\"\n  edgeloop completions fish > ~/.config/fish/completions/edgeloop.fish"
)]
pub struct Args {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes the script for `shell` to `out`.
pub fn write(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    let mut cmd = super::Cli::command();
    clap_complete::generate(shell, &mut cmd, "edgeloop", out);
}

/// Runs `edgeloop completions`.
pub fn run(args: Args) -> anyhow::Result<()> {
    write(args.shell, &mut std::io::stdout().lock());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand appears in the generated scripts.
    #[test]
    fn scripts_name_every_subcommand() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut buf = Vec::new();
            write(shell, &mut buf);
            let text = String::from_utf8(buf).expect("utf-8 script");
            for sub in super::super::Cli::command().get_subcommands() {
                assert!(
                    text.contains(sub.get_name()),
                    "{shell:?} script lacks `{}`",
                    sub.get_name()
                );
            }
        }
    }
}
