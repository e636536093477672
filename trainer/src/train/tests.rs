//! Training-loop tests on tiny models and synthetic token data: learning, early stopping,
//! gradient accumulation, bitwise resume, SFT, DPO, LoRA, QAT.

use super::tasks::*;
use super::*;
use crate::models::tests::{tiny_bert_config, tiny_gpt_config};
use crate::models::{layers, Bert, BuildOptions, Gpt, GptConfig, LoraConfig, Params};
use crate::optim::AdamW;
use candle_core::Device;

/// A learnable synthetic stream: a fixed pseudo-random cycle of period 5 over tokens 3..17.
fn stream(n: usize, offset: usize) -> Vec<u32> {
    let cycle = [3u32, 9, 4, 12, 7];
    (0..n).map(|i| cycle[(i + offset) % 5]).collect()
}

fn lm_task(params: &mut Params, cfg: &GptConfig, opts: BuildOptions) -> LmTask {
    LmTask {
        model: Gpt::new(cfg, params, opts).unwrap(),
        train: stream(400, 0),
        val: stream(100, 2),
        batch_size: 4,
        seq_len: 8,
        eval_windows: 8,
        engine: None,
    }
}

fn train_cfg(steps: usize) -> TrainConfig {
    TrainConfig {
        steps,
        grad_accum: 1,
        schedule: Schedule {
            lr: 1e-2,
            min_lr: 1e-3,
            warmup_steps: 3,
            decay_steps: steps,
        },
        optimizer: Default::default(),
        clip_grad_norm: Some(1.0),
        eval_every: 10,
        patience: None,
        checkpoint_every: 0,
        seed: 5,
    }
}

fn weights(p: &Params) -> Vec<(String, Vec<u32>)> {
    p.iter()
        .map(|(n, v)| {
            let bits = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            (n.clone(), bits)
        })
        .collect()
}

#[test]
fn gpt_learns_a_synthetic_sequence() {
    let dev = Device::Cpu;
    let mut p = Params::new(1, &dev);
    let mut task = lm_task(&mut p, &tiny_gpt_config(None), BuildOptions::default());
    let before = task.eval_loss().unwrap();
    let mut opt = AdamW::new(p.trainable(), Default::default()).unwrap();
    let cfg = train_cfg(60);
    let mut st = TrainState::new(cfg.seed);
    run::<()>(
        &mut task,
        &p,
        &mut opt,
        &cfg,
        &mut st,
        None,
        &RunOptions::default(),
    )
    .unwrap();
    let after = st.eval_losses.last().unwrap().1;
    println!("synthetic LM: eval loss {before:.3} -> {after:.3}");
    assert!(before > 2.5 && after < 0.8, "{before} -> {after}");
    assert_eq!(st.step, 60);
    assert_eq!(st.eval_losses.len(), 6);
}

#[test]
fn resume_from_checkpoint_is_bitwise_identical() {
    let dev = Device::Cpu;
    let cfg = TrainConfig {
        grad_accum: 2,
        checkpoint_every: 4,
        ..train_cfg(10)
    };
    let model_cfg = tiny_gpt_config(None);
    // uninterrupted
    let mut p1 = Params::new(9, &dev);
    let mut t1 = lm_task(&mut p1, &model_cfg, BuildOptions::default());
    let mut o1 = AdamW::new(p1.trainable(), cfg.optimizer.clone()).unwrap();
    let mut s1 = TrainState::new(cfg.seed);
    run::<()>(
        &mut t1,
        &p1,
        &mut o1,
        &cfg,
        &mut s1,
        None,
        &RunOptions::default(),
    )
    .unwrap();
    // interrupted after 7 steps (last checkpoint at step 4), then a fresh "process" resumes
    let root = std::env::temp_dir().join(format!("edgeloop-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    {
        let mut p2 = Params::new(9, &dev);
        let mut t2 = lm_task(&mut p2, &model_cfg, BuildOptions::default());
        let mut o2 = AdamW::new(p2.trainable(), cfg.optimizer.clone()).unwrap();
        let mut s2 = TrainState::new(cfg.seed);
        let target = CheckpointTarget {
            root: root.clone(),
            model_config: &model_cfg,
        };
        let stop = RunOptions {
            max_steps_this_run: Some(7),
            progress: false,
        };
        run(&mut t2, &p2, &mut o2, &cfg, &mut s2, Some(&target), &stop).unwrap();
        assert_eq!(s2.step, 7);
    } // everything of the first process is dropped: the steps after 4 are lost
    let dir = crate::checkpoint::latest(&root).unwrap().unwrap();
    assert!(dir.ends_with("step-000004"));
    let loaded = crate::checkpoint::load::<GptConfig, serde_json::Value>(&dir, &dev).unwrap();
    let mut p3 = loaded.params;
    let mut t3 = lm_task(&mut p3, &loaded.config, BuildOptions::default());
    let mut o3 = AdamW::new(p3.trainable(), cfg.optimizer.clone()).unwrap();
    let mut s3 = restore(&mut o3, loaded.optimizer.as_ref(), loaded.state).unwrap();
    assert_eq!(s3.step, 4);
    let target = CheckpointTarget {
        root: root.clone(),
        model_config: &model_cfg,
    };
    run(
        &mut t3,
        &p3,
        &mut o3,
        &cfg,
        &mut s3,
        Some(&target),
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(s3.step, 10);
    assert!(
        weights(&p1) == weights(&p3),
        "resumed weights differ from the uninterrupted run"
    );
    assert_eq!(s1.train_losses, s3.train_losses);
    std::fs::remove_dir_all(&root).unwrap();
}

/// The hand-written path of the LM task draws the same batch from the RNG as the autograd
/// path, gives the same loss, and a gradient for every trainable parameter.
#[test]
fn lm_engine_path_draws_like_train_loss_and_agrees_with_it() {
    use rand::SeedableRng;
    let mut p = Params::new(3, &Device::Cpu);
    let mut task = lm_task(&mut p, &tiny_gpt_config(None), BuildOptions::default());
    let mut r1 = ChaCha8Rng::seed_from_u64(7);
    let mut r2 = r1.clone();
    let loss = task
        .train_loss(&mut r1)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let Some((l2, grads)) = task.train_loss_and_grads(&mut r2).unwrap() else {
        // another test switched the fused kernels off meanwhile (a process-wide flag)
        assert!(!gpt_engine::GptEngine::supports(&task.model));
        return;
    };
    assert_eq!(r1.get_word_pos(), r2.get_word_pos());
    assert!((loss - l2).abs() <= 1e-5 * loss, "{loss} vs {l2}");
    for (name, v) in p.trainable() {
        assert!(grads.get(v.as_tensor()).is_some(), "{name}: no gradient");
    }
}

/// A task whose validation loss is scripted, to test the loop's early-stopping logic alone.
struct Scripted {
    inner: LmTask,
    evals: std::vec::IntoIter<f32>,
}

impl Task for Scripted {
    fn train_loss(&mut self, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        self.inner.train_loss(rng)
    }
    fn eval_loss(&mut self) -> Result<f32> {
        Ok(self.evals.next().unwrap_or(9.0))
    }
}

#[test]
fn early_stopping_after_patience_evaluations_without_improvement() {
    let dev = Device::Cpu;
    let mut p = Params::new(2, &dev);
    let inner = lm_task(&mut p, &tiny_gpt_config(None), BuildOptions::default());
    let mut task = Scripted {
        inner,
        evals: vec![3.0, 2.0, 2.5, 2.1, 2.2, 1.0].into_iter(),
    };
    let mut opt = AdamW::new(p.trainable(), Default::default()).unwrap();
    let cfg = TrainConfig {
        eval_every: 2,
        patience: Some(3),
        ..train_cfg(100)
    };
    let mut st = TrainState::new(1);
    run::<()>(
        &mut task,
        &p,
        &mut opt,
        &cfg,
        &mut st,
        None,
        &RunOptions::default(),
    )
    .unwrap();
    assert!(st.stopped_early);
    assert_eq!(
        st.step, 10,
        "stops at the 5th evaluation (3 without improving on 2.0)"
    );
    assert_eq!(st.best_eval, Some(2.0));
}

#[test]
fn gradient_accumulation_matches_one_large_batch() {
    let dev = Device::Cpu;
    let cfg_m = tiny_gpt_config(None);
    let seqs: Vec<Vec<u32>> = (0..4).map(|i| stream(9, i)).collect();
    let mut results = vec![];
    for accum in [1usize, 2] {
        let mut p = Params::new(4, &dev);
        let gpt = Gpt::new(&cfg_m, &mut p, BuildOptions::default()).unwrap();
        let mut opt = AdamW::new(p.trainable(), Default::default()).unwrap();
        let per = 4 / accum;
        let mut grads = None;
        for k in 0..accum {
            let b = objectives::TokenBatch::causal(&seqs[k * per..(k + 1) * per]).unwrap();
            let l = objectives::gpt_lm_loss(&gpt, &b).unwrap();
            grads =
                Some(crate::optim::accumulate(grads, l.backward().unwrap(), opt.vars()).unwrap());
        }
        opt.step(&grads.unwrap(), 1e-2, 1.0 / accum as f64).unwrap();
        results.push(
            p.var("h.0.attn.q.weight")
                .unwrap()
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
    }
    let d = results[0]
        .iter()
        .zip(&results[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-6, "{d}");
}

#[test]
fn encoder_mlm_pretraining_reduces_loss() {
    let dev = Device::Cpu;
    let mut p = Params::new(6, &dev);
    let mut task = MlmTask {
        model: Bert::new(&tiny_bert_config(None), &mut p, BuildOptions::default()).unwrap(),
        train: stream(400, 0),
        val: stream(100, 1),
        batch_size: 8,
        seq_len: 8,
        eval_windows: 16,
        mask_id: 2,
        special: vec![0, 1],
    };
    let before = task.eval_loss().unwrap();
    let mut opt = AdamW::new(p.trainable(), Default::default()).unwrap();
    let cfg = train_cfg(60);
    let mut st = TrainState::new(3);
    run::<()>(
        &mut task,
        &p,
        &mut opt,
        &cfg,
        &mut st,
        None,
        &RunOptions::default(),
    )
    .unwrap();
    let after = task.eval_loss().unwrap();
    println!("synthetic MLM: eval loss {before:.3} -> {after:.3}");
    assert!(after < before * 0.6, "{before} -> {after}");
}

/// Label = which of two patterns a sequence follows; padding to various lengths.
fn class_examples(n: usize, offset: usize) -> Vec<(Vec<u32>, u32)> {
    (0..n)
        .map(|i| {
            let label = ((i + offset) % 2) as u32;
            let len = 3 + (i * 7 + offset) % 5;
            let toks = (0..len)
                .map(|j| {
                    if label == 0 {
                        3 + (j % 3) as u32
                    } else {
                        10 + (j % 4) as u32
                    }
                })
                .collect();
            (toks, label)
        })
        .collect()
}

#[test]
fn classification_fine_tuning_with_lora_then_merge() {
    let dev = Device::Cpu;
    let mut p = Params::new(7, &dev);
    let lora = LoraConfig {
        rank: 2,
        alpha: 4.0,
        target_modules: vec!["query".into(), "value".into()],
    };
    let cfg_m = tiny_bert_config(Some(2));
    let opts = BuildOptions {
        lora: Some(lora.clone()),
        qat: false,
    };
    let model = Bert::new(&cfg_m, &mut p, opts).unwrap();
    // LoRA: freeze everything but the adapters and the new head
    p.freeze_where(|n| !(n.contains(".lora_") || n.starts_with("classifier.")));
    let trainable: Vec<String> = p.trainable().into_iter().map(|(n, _)| n).collect();
    assert_eq!(trainable.len(), 2 * 2 * 2 + 2, "{trainable:?}");
    let frozen_before = p
        .var("encoder.layer.0.attention.self.query.weight")
        .unwrap()
        .as_tensor()
        .to_vec2::<f32>()
        .unwrap();
    let mut task = ClassifyTask {
        model: Classifier::Bert(model),
        train: class_examples(64, 0),
        val: class_examples(16, 1),
        batch_size: 8,
        pad: 0,
    };
    let (_, acc0) = task.evaluate(&task.val.clone()).unwrap();
    let mut opt = AdamW::new(p.trainable(), Default::default()).unwrap();
    let cfg = TrainConfig {
        schedule: Schedule {
            lr: 3e-2,
            min_lr: 3e-3,
            warmup_steps: 2,
            decay_steps: 40,
        },
        ..train_cfg(40)
    };
    let mut st = TrainState::new(2);
    run::<()>(
        &mut task,
        &p,
        &mut opt,
        &cfg,
        &mut st,
        None,
        &RunOptions::default(),
    )
    .unwrap();
    let (_, acc) = task.evaluate(&task.val.clone()).unwrap();
    println!("LoRA classifier: accuracy {acc0:.2} -> {acc:.2}");
    assert!(acc >= 0.85 && acc > acc0, "{acc0} -> {acc}");
    let frozen_after = p
        .var("encoder.layer.0.attention.self.query.weight")
        .unwrap()
        .as_tensor()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(
        frozen_before, frozen_after,
        "frozen base weights must not move"
    );
    // merge and compare outputs
    let batch = objectives::ClassBatch::new(&task.val, 0, 8, 2, &dev).unwrap();
    let before_merge: Vec<Vec<f32>> = task.model.logits(&batch).unwrap().to_vec2().unwrap();
    assert_eq!(layers::merge_lora(&mut p, &lora).unwrap(), 4);
    assert!(p.iter().all(|(n, _)| !n.contains("lora")));
    let merged = Bert::new(&cfg_m, &mut p, BuildOptions::default()).unwrap();
    let after_merge: Vec<Vec<f32>> = merged
        .classify(&batch.ids, Some(&batch.mask))
        .unwrap()
        .to_vec2()
        .unwrap();
    for (a, b) in before_merge
        .iter()
        .flatten()
        .zip(after_merge.iter().flatten())
    {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn qat_fine_tuning_trains_through_fake_quant() {
    let dev = Device::Cpu;
    let mut p = Params::new(8, &dev);
    let opts = BuildOptions {
        lora: None,
        qat: true,
    };
    let cfg_m = tiny_gpt_config(Some(2));
    let mut task = ClassifyTask {
        model: Classifier::Gpt(Gpt::new(&cfg_m, &mut p, opts).unwrap()),
        train: class_examples(64, 0),
        val: class_examples(16, 1),
        batch_size: 8,
        pad: 0,
    };
    let mut opt = AdamW::new(p.trainable(), Default::default()).unwrap();
    let cfg = TrainConfig {
        schedule: Schedule {
            lr: 2e-2,
            min_lr: 2e-3,
            warmup_steps: 2,
            decay_steps: 40,
        },
        ..train_cfg(40)
    };
    let mut st = TrainState::new(3);
    run::<()>(
        &mut task,
        &p,
        &mut opt,
        &cfg,
        &mut st,
        None,
        &RunOptions::default(),
    )
    .unwrap();
    let (loss, acc) = task.evaluate(&task.val.clone()).unwrap();
    println!("QAT classifier: val loss {loss:.3}, accuracy {acc:.2}");
    assert_eq!(acc, 1.0);
    // the QAT forward really quantizes: it differs from the float forward of the same weights
    let float = Gpt::new(&cfg_m, &mut p, BuildOptions::default()).unwrap();
    let b = objectives::ClassBatch::new(&task.val, 0, 8, 2, &dev).unwrap();
    let q = task.model.logits(&b).unwrap();
    let f = float.classify(&b.ids, Some(&b.mask)).unwrap();
    let d = (q - f)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d > 0.0 && d < 0.5, "QAT vs float logits differ by {d}");
}

#[test]
fn sft_then_dpo_prefers_chosen_responses() {
    let dev = Device::Cpu;
    let mut p = Params::new(10, &dev);
    let cfg_m = tiny_gpt_config(None);
    // SFT: prompt [5, k] → response [k+6, 16]
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = (0..5u32)
        .map(|k| (vec![5, 3 + k], vec![9 + k, 16]))
        .collect();
    let mut sft = SftTask {
        model: Gpt::new(&cfg_m, &mut p, BuildOptions::default()).unwrap(),
        train: pairs.clone(),
        val: pairs.clone(),
        batch_size: 4,
        pad: 0,
    };
    let before = sft.eval_loss().unwrap();
    let mut opt = AdamW::new(p.trainable(), Default::default()).unwrap();
    let mut st = TrainState::new(4);
    run::<()>(
        &mut sft,
        &p,
        &mut opt,
        &train_cfg(40),
        &mut st,
        None,
        &RunOptions::default(),
    )
    .unwrap();
    let after = sft.eval_loss().unwrap();
    println!("SFT: response loss {before:.3} -> {after:.3}");
    assert!(after < 0.5 * before, "{before} -> {after}");
    // DPO: prefer response [k+9, 16] over [3, 16]
    let reference_params = Params::from_tensors(p.to_tensors().unwrap(), &dev).unwrap();
    let mut rp = reference_params;
    let reference = Gpt::new(&cfg_m, &mut rp, BuildOptions::default()).unwrap();
    let prefs: Vec<Preference> = (0..5u32)
        .map(|k| (vec![5, 3 + k], vec![12 - k, 16], vec![9 + k, 16]))
        .collect();
    let mut dpo = DpoTask {
        policy: Gpt::new(&cfg_m, &mut p, BuildOptions::default()).unwrap(),
        reference,
        train: prefs.clone(),
        val: prefs.clone(),
        batch_size: 4,
        pad: 0,
        beta: 0.5,
        nll_weight: 0.0,
    };
    assert!(
        dpo.reward_margin(&prefs).unwrap().abs() < 1e-5,
        "policy starts equal to the reference"
    );
    let l0 = dpo.eval_loss().unwrap();
    assert!((l0 - std::f32::consts::LN_2).abs() < 1e-4, "{l0}");
    let ref_before = rp
        .var("wte.weight")
        .unwrap()
        .as_tensor()
        .to_vec2::<f32>()
        .unwrap();
    let mut opt = AdamW::new(p.trainable(), Default::default()).unwrap();
    let mut st = TrainState::new(5);
    let cfg = TrainConfig {
        schedule: Schedule {
            lr: 5e-3,
            min_lr: 5e-4,
            warmup_steps: 2,
            decay_steps: 30,
        },
        ..train_cfg(30)
    };
    run::<()>(
        &mut dpo,
        &p,
        &mut opt,
        &cfg,
        &mut st,
        None,
        &RunOptions::default(),
    )
    .unwrap();
    let margin = dpo.reward_margin(&prefs).unwrap();
    let l1 = dpo.eval_loss().unwrap();
    println!("DPO: loss {l0:.3} -> {l1:.3}, reward margin {margin:.3}");
    assert!(margin > 1.0 && l1 < 0.5, "margin {margin}, loss {l1}");
    assert_eq!(
        ref_before,
        rp.var("wte.weight")
            .unwrap()
            .as_tensor()
            .to_vec2::<f32>()
            .unwrap(),
        "reference frozen"
    );
}

#[test]
fn dpo_nll_adds_the_chosen_per_token_nll_and_its_gradient() {
    let dev = Device::Cpu;
    let mut p = Params::new(11, &dev);
    let cfg_m = tiny_gpt_config(None);
    let policy = Gpt::new(&cfg_m, &mut p, BuildOptions::default()).unwrap();
    let mut rp = Params::new(12, &dev);
    let reference = Gpt::new(&cfg_m, &mut rp, BuildOptions::default()).unwrap();
    // Chosen answers of different lengths, so the per-row token count matters.
    let chosen = objectives::TokenBatch::instruction(
        &[
            (vec![5, 3], vec![9, 16]),
            (vec![5, 4], vec![10, 11, 12, 16]),
        ],
        0,
    )
    .unwrap();
    let rejected = objectives::TokenBatch::instruction(
        &[(vec![5, 3], vec![7, 16]), (vec![5, 4], vec![8, 16])],
        0,
    )
    .unwrap();
    let plain = objectives::dpo_loss(&policy, &reference, &chosen, &rejected, 0.5)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let zero = objectives::dpo_nll_loss(&policy, &reference, &chosen, &rejected, 0.5, 0.0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(plain, zero);
    let with = objectives::dpo_nll_loss(&policy, &reference, &chosen, &rejected, 0.5, 2.0).unwrap();
    let lp: Vec<f32> = objectives::sequence_logprob(&policy, &chosen)
        .unwrap()
        .to_vec1()
        .unwrap();
    let want = plain + 2.0 * (-lp[0] / 2.0 - lp[1] / 4.0) / 2.0;
    let got = with.to_scalar::<f32>().unwrap();
    assert!(
        (got - want).abs() < 1e-5 * want.abs().max(1.0),
        "{got} vs {want}"
    );
    // The NLL term reaches the embedding table.
    let grads = with.backward().unwrap();
    let g = grads
        .get(p.var("wte.weight").unwrap().as_tensor())
        .expect("a gradient for wte.weight");
    assert!(
        g.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0
    );
}
