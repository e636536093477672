use super::super::testutil::{self, tiny_config, EOS, PAD};
use super::*;
use crate::rlhf::kl::KlController;

fn cfg(steps: usize) -> CompareConfig {
    CompareConfig {
        steps,
        eval_every: 8,
        max_new_tokens: 5,
        eval_samples: 4,
        seed: 3,
        reward: RewardTraining {
            train: TrainConfig {
                steps: 80,
                grad_accum: 1,
                schedule: Schedule {
                    lr: 3e-3,
                    min_lr: 3e-4,
                    warmup_steps: 5,
                    decay_steps: 80,
                },
                optimizer: Default::default(),
                clip_grad_norm: Some(1.0),
                eval_every: 0,
                patience: None,
                checkpoint_every: 0,
                seed: 1,
            },
            batch_size: 16,
            init_seed: 2,
            checkpoints: None,
            max_steps_this_run: None,
            progress: false,
        },
        dpo: DpoSettings {
            beta: 0.1,
            lr: 3e-3,
            batch_size: 8,
        },
        ppo: PpoConfig {
            rollouts_per_iteration: 32,
            epochs: 2,
            minibatch_size: 16,
            lr: 3e-3,
            kl: KlController {
                init_coef: 0.05,
                target: Some(2.0),
                horizon: 200.0,
            },
            seed: 4,
            ..PpoConfig::default()
        },
        rloo: Some(RlooConfig {
            prompts_per_iteration: 4,
            samples_per_prompt: 4,
            lr: 3e-3,
            seed: 5,
            ..RlooConfig::default()
        }),
        progress: false,
    }
}

/// The whole harness on the synthetic task: the reward model learns the preference, PPO raises
/// the reward-model score above SFT's and moves away from the reference, SFT's own numbers are
/// exact (win rate 1/2 with all ties, KL 0), and the report, its Markdown and plots are written.
#[test]
fn comparison_runs_and_reports() {
    let sft = testutil::sft_tensors(30);
    let all = testutil::pairs(300, 31);
    let (val, train) = all.split_at(50);
    let data = CompareData {
        train_prompts: testutil::prompts(60, 40),
        eval_prompts: testutil::prompts(24, 41),
        train_pairs: train.to_vec(),
        val_pairs: val.to_vec(),
    };
    let dir = std::env::temp_dir().join(format!("edgeloop-rlhf-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let c = compare(
        &tiny_config(),
        &sft,
        &data,
        &testutil::oracle,
        &cfg(32),
        Some(EOS),
        PAD,
        &Device::Cpu,
        Some(&dir),
    )
    .unwrap();
    let r = &c.report;
    let names: Vec<&str> = c.policies.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["sft", "dpo", "ppo", "rloo"]);
    assert!(c.policies.iter().all(|(_, w)| w.len() == sft.len()));
    assert!(r.reward_model.val_accuracy > 0.7, "{:?}", r.reward_model);
    let names: Vec<&str> = r.methods.iter().map(|m| m.method.as_str()).collect();
    assert_eq!(names, vec!["sft", "dpo", "ppo", "rloo"]);
    let sft_r = r.method("sft").unwrap();
    assert_eq!(sft_r.last.ties, 24);
    assert_eq!(sft_r.last.win_rate, 0.5);
    assert_eq!(sft_r.last.kl, 0.0);
    for m in &r.methods[1..] {
        assert_eq!(m.steps, 32, "{}", m.method);
        assert_eq!(m.curve.first().unwrap().step, 0);
        assert_eq!(m.curve.last().unwrap().step, 32);
        assert!(m.last.kl.is_finite());
        assert!(m.last.wins + m.last.ties + m.last.losses == 24);
    }
    let ppo = r.method("ppo").unwrap();
    assert!(
        ppo.last.rm_score > sft_r.last.rm_score,
        "PPO's reward-model score {} vs SFT's {}",
        ppo.last.rm_score,
        sft_r.last.rm_score
    );
    assert!(ppo.last.kl > 0.0);
    for f in [
        "report.json",
        "report.md",
        "reward.png",
        "kl.png",
        "oracle.png",
    ] {
        let p = dir.join(f);
        assert!(p.metadata().map(|m| m.len() > 100).unwrap_or(false), "{f}");
    }
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    eprintln!("{md}");
    assert!(md.contains("| ppo |") && md.contains("| dpo |") && md.contains("| rloo |"));
    std::fs::remove_dir_all(&dir).unwrap();
}
