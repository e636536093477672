//! Subcommands. Each module has a clap `Args` and `run(args) -> anyhow::Result<()>`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod backends;
pub mod compile;
pub mod completions;
pub mod data;
pub mod demo;
pub mod eval;
pub mod firmware;
pub mod flash;
pub mod keygen;
pub mod kws;
pub mod output;
pub mod quantize;
pub mod retrain;
pub mod rlhf;
pub mod run;
pub mod select;
pub mod serve;
pub mod sign;
pub mod telemetry;
pub mod train;

/// edgeloop: select data, train, evaluate, quantize, compile, run on microcontrollers, monitor, retrain.
#[derive(Debug, Parser)]
#[command(name = "edgeloop", version, about, long_about = None)]
#[command(after_help = "Exit codes: 0 success, 1 a stage failed, 2 bad usage.")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress bars or status lines (errors still go to stderr).
    #[arg(long, global = true)]
    quiet: bool,
    /// Print a machine-readable JSON summary on stdout (status lines go to stderr).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Compile an ONNX model (int8 QDQ or fp32) into a model image (--report: sizes, arena, MACs, ops).
    Compile(compile::Args),
    /// Generate the default corpus, select data, tokenize.
    Data(data::Args),
    /// Run the whole loop on the data that ships with the project.
    Demo(demo::Args),
    /// Score predictions from JSON Lines files and write a report (JSON, Markdown, HTML + plots).
    Eval(eval::Args),
    /// Write the classify firmware's embedded assets: a model image, inputs, host outputs.
    FirmwareAssets(firmware::Args),
    /// Generate an Ed25519 key pair for signing model images (edgeloop.key, edgeloop.pub).
    Keygen(keygen::Args),
    /// Keyword spotting on WAV files with a keyword model image (front end + model).
    Kws(kws::Args),
    /// Write a model image for a flasher: Intel HEX or raw binary at a flash address.
    Flash(flash::Args),
    /// Run the retraining policy on a run folder and its telemetry: triggers, retraining set,
    /// fine-tune, v+1 image, evaluation gate, rollout manifest.
    Retrain(retrain::Args),
    /// Compare SFT, DPO, RLHF (PPO) and RLOO on a demo run's assistant; report with plots.
    Rlhf(rlhf::Args),
    /// Run a model image on the host runtime (or an ONNX model through runtime / ONNX Runtime /
    /// tract): print outputs and timing.
    Run(run::Args),
    /// Pick the model for a device budget: exact footprints from the compiler, brief training,
    /// a Pareto front of accuracy vs latency vs RAM, the winner trained fully.
    Select(select::Args),
    /// Sign a model image with an Ed25519 key (appends the signature trailer).
    Sign(sign::SignArgs),
    /// Verify a signed model image against a public key.
    Verify(sign::VerifyArgs),
    /// Serve model images over HTTP: predict, generate, feedback, metrics, signed hot-swap.
    Serve(serve::Args),
    /// Quantize an fp32 ONNX model to int8 QDQ ONNX with calibration data.
    Quantize(quantize::Args),
    /// Train models: pretrain (GPT / encoder), finetune (classify, SFT, LoRA, QAT), dpo, export to ONNX.
    Train(train::Args),
    /// Ingest device telemetry into a Parquet store; report drift against a reference.
    Telemetry(telemetry::Args),
}

/// Dispatches to the subcommand.
impl Cli {
    /// Whether the command is `serve` (which keeps SIGPIPE ignored: a client that disconnects
    /// must not end the server).
    pub fn is_serve(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    output::set(cli.quiet, cli.json);
    match cli.command {
        Command::Completions(args) => completions::run(args)?,
        Command::Compile(args) => compile::run(args)?,
        Command::Data(args) => data::run(args)?,
        Command::Demo(args) => demo::run(args)?,
        Command::Eval(args) => eval::run(args)?,
        Command::FirmwareAssets(args) => firmware::run(args)?,
        Command::Flash(args) => flash::run(args)?,
        Command::Quantize(args) => quantize::run(args)?,
        Command::Keygen(args) => keygen::run(args)?,
        Command::Kws(args) => kws::run(args)?,
        Command::Retrain(args) => retrain::run(args)?,
        Command::Rlhf(args) => rlhf::run(args)?,
        Command::Run(args) => run::run(args)?,
        Command::Select(args) => select::run(args)?,
        Command::Sign(args) => sign::run_sign(args)?,
        Command::Verify(args) => sign::run_verify(args)?,
        Command::Serve(args) => serve::run(args)?,
        Command::Train(args) => train::run(args)?,
        Command::Telemetry(args) => return telemetry::run(args),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    /// Every leaf command, with its path.
    fn leaves(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        let subs: Vec<&clap::Command> = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push((path.clone(), cmd.clone()));
        }
        for s in subs {
            leaves(s, format!("{path} {}", s.get_name()), out);
        }
    }

    #[test]
    fn every_command_the_issue_names_exists_and_takes_quiet_and_json() {
        let mut cmd = Cli::command();
        cmd.build();
        let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
        for want in [
            "data",
            "train",
            "eval",
            "quantize",
            "compile",
            "run",
            "flash",
            "serve",
            "telemetry",
            "retrain",
            "demo",
        ] {
            assert!(names.contains(&want), "no `edgeloop {want}` in {names:?}");
        }
        let mut all = Vec::new();
        leaves(&cmd, "edgeloop".into(), &mut all);
        assert!(all.len() > names.len(), "nested subcommands are walked");
        for (path, c) in &all {
            for flag in ["quiet", "json"] {
                assert!(
                    c.get_arguments().any(|a| a.get_long() == Some(flag)),
                    "`{path}` does not take --{flag}"
                );
            }
        }
    }

    #[test]
    fn every_subcommand_has_help_with_an_example() {
        let cmd = Cli::command();
        let mut missing: Vec<String> = Vec::new();
        for sc in cmd.get_subcommands() {
            let mut help = sc
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            // Commands with subcommands may carry the examples on each subcommand.
            for sub in sc.get_subcommands() {
                help.push_str(
                    &sub.get_after_help()
                        .map(|h| h.to_string())
                        .unwrap_or_default(),
                );
            }
            if !help.contains("edgeloop ") || sc.get_about().is_none() {
                missing.push(sc.get_name().to_string());
            }
        }
        assert!(
            missing.is_empty(),
            "no example or description in --help of: {missing:?}"
        );
    }

    /// A shared flag means one thing on every command: `--device` names hardware (a compute
    /// device such as `cpu`/`cuda:0`, or a device profile such as `cortex-m4`), a telemetry
    /// device id is always `--device-id`; `--out`, `--config` and `--seed` always take a value.
    #[test]
    fn shared_flags_keep_one_meaning_across_commands() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut all = Vec::new();
        leaves(&cmd, "edgeloop".into(), &mut all);
        let mut seen = std::collections::BTreeMap::<&str, usize>::new();
        for (path, c) in &all {
            for a in c.get_arguments() {
                let help = a
                    .get_help()
                    .map(|h| h.to_string().to_lowercase())
                    .unwrap_or_default();
                let Some(long) = a.get_long() else { continue };
                if help.contains("device id") {
                    assert_eq!(long, "device-id", "`{path} --{long}` is a device id");
                }
                match long {
                    "device" => {
                        assert!(
                            help.contains("cpu") || help.contains("profile"),
                            "`{path} --device` must name hardware (a compute device or a \
                             device profile): {help}"
                        );
                        assert!(!help.contains(" id"), "`{path} --device`: {help}");
                    }
                    "out" | "config" | "seed" | "device-id" => assert!(
                        a.get_action().takes_values(),
                        "`{path} --{long}` takes no value"
                    ),
                    _ => continue,
                }
                *seen.entry(long).or_default() += 1;
            }
        }
        for flag in ["out", "config", "seed", "device", "device-id"] {
            assert!(seen.contains_key(flag), "no command takes --{flag}");
        }
    }

    #[test]
    fn quiet_and_json_parse_before_or_after_the_subcommand() {
        for args in [
            &["edgeloop", "--json", "retrain", "--run", "x"][..],
            &["edgeloop", "retrain", "--run", "x", "--json", "--quiet"][..],
            &[
                "edgeloop", "data", "tokenize", "--input", "a", "--out", "b", "--json",
            ][..],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
}
