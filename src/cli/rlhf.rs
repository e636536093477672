//! `edgeloop rlhf`: SFT only vs DPO vs RLHF (PPO) vs RLOO on a finished demo run's assistant —
//! the reward model trained on the field's preference pairs (ratings and corrections from the
//! assistant's telemetry store) plus pairs from the demo's synthetic oracle, each method under
//! the same step budget, judged by the oracle on the held-out field prompts; the SFT and PPO
//! policies quantized, compiled and signed to measure int8 agreement. Writes `report.md`,
//! `report.json`, `rlhf.json` and reward/KL/oracle plots under `--out`.

use std::path::PathBuf;

use crate::demo::assistant::rlhf::{compare_on_run, DemoComparison};

/// Arguments of `edgeloop rlhf`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  edgeloop demo --out runs/demo\n  \
edgeloop rlhf --run runs/demo --out runs/rlhf\n  \
edgeloop rlhf --run runs/demo --out runs/rlhf-quick --steps 40 --reward-steps 100 --no-int8 --json\n\n\
Minutes on 2 cores at the defaults. The run folder needs assistant/model (the SFT checkpoint), \
data/assistant/*.jsonl and telemetry/assistant (the field store), as `edgeloop demo` leaves them.")]
pub struct Args {
    /// Run folder made by `edgeloop demo`.
    #[arg(long, default_value = "runs/demo")]
    pub run: PathBuf,
    /// Where the comparison's report and plots go.
    #[arg(long, default_value = "runs/rlhf")]
    pub out: PathBuf,
    /// Policy steps of each method (DPO, PPO, RLOO).
    #[arg(long, default_value_t = DemoComparison::default().steps)]
    pub steps: usize,
    /// Evaluate every this many steps (the curves' resolution).
    #[arg(long, default_value_t = DemoComparison::default().eval_every)]
    pub eval_every: usize,
    /// Reward-model training steps.
    #[arg(long, default_value_t = DemoComparison::default().reward_steps)]
    pub reward_steps: usize,
    /// Lab prompts the synthetic oracle rates to add preference pairs (0: field pairs only).
    #[arg(long, default_value_t = DemoComparison::default().oracle_prompts)]
    pub oracle_prompts: usize,
    /// Learning rate of PPO and RLOO.
    #[arg(long, default_value_t = DemoComparison::default().rl_lr)]
    pub rl_lr: f64,
    /// Learning rate of DPO.
    #[arg(long, default_value_t = DemoComparison::default().dpo_lr)]
    pub dpo_lr: f64,
    /// Initial KL coefficient of PPO and RLOO.
    #[arg(long, default_value_t = DemoComparison::default().kl_coef)]
    pub kl_coef: f64,
    /// Target KL (nats per response) of PPO's adaptive coefficient.
    #[arg(long, default_value_t = DemoComparison::default().kl_target)]
    pub kl_target: f64,
    /// Seed.
    #[arg(long, default_value_t = DemoComparison::default().seed)]
    pub seed: u64,
    /// Skip quantizing, compiling and signing the policies (no int8 agreement).
    #[arg(long)]
    pub no_int8: bool,
}

/// Runs `edgeloop rlhf`.
pub fn run(args: Args) -> anyhow::Result<()> {
    for (name, v) in [
        ("--rl-lr", args.rl_lr),
        ("--dpo-lr", args.dpo_lr),
        ("--kl-target", args.kl_target),
    ] {
        anyhow::ensure!(v.is_finite() && v > 0.0, "{name} must be > 0, got {v}");
    }
    anyhow::ensure!(
        args.kl_coef.is_finite() && args.kl_coef >= 0.0,
        "--kl-coef must be ≥ 0, got {}",
        args.kl_coef
    );
    anyhow::ensure!(
        args.steps > 0 && args.eval_every > 0 && args.reward_steps > 0,
        "--steps, --eval-every and --reward-steps must be > 0"
    );
    anyhow::ensure!(
        args.run.join("assistant/model").is_dir(),
        "{} has no assistant/model: give the folder of a finished `edgeloop demo --out RUN`",
        args.run.display()
    );
    let settings = DemoComparison {
        steps: args.steps,
        eval_every: args.eval_every,
        reward_steps: args.reward_steps,
        oracle_prompts: args.oracle_prompts,
        rl_lr: args.rl_lr,
        dpo_lr: args.dpo_lr,
        kl_coef: args.kl_coef,
        kl_target: args.kl_target,
        seed: args.seed,
        int8: !args.no_int8,
        progress: super::output::progress(),
        ..DemoComparison::default()
    };
    let report = compare_on_run(&args.run, &args.out, &settings)?;
    if !super::output::json() {
        let md = std::fs::read_to_string(args.out.join("report.md")).unwrap_or_default();
        crate::say!("{md}");
        crate::say!(
            "report: {} ({:.0} s)",
            args.out.join("report.md").display(),
            report.seconds
        );
    }
    super::output::summary(&report)
}
