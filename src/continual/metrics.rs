//! The summaries of a continual-learning run, from its accuracy matrix `R[i][j]` (accuracy
//! on task `j` after learning task `i`) and the accuracy on each task before any learning:
//! ours (Chaudhry et al. 2018 forgetting, Lopez-Paz & Ranzato 2017 transfer) and the same run
//! under Avalanche's metric names and definitions, so the numbers sit beside theirs.

use std::collections::BTreeMap;

/// Average accuracy, forgetting, backward and forward transfer of an accuracy matrix
/// (`r[i][j]`, square), given the accuracies before learning.
pub fn summarize(r: &[Vec<f32>], initial: &[f32]) -> (f32, f32, f32, f32) {
    let t = r.len();
    let last = &r[t - 1];
    let acc = last.iter().sum::<f32>() / t as f32;
    if t < 2 {
        return (acc, 0.0, 0.0, 0.0);
    }
    let k = (t - 1) as f32;
    let mut forgetting = 0.0;
    let mut bwt = 0.0;
    let mut fwt = 0.0;
    for j in 0..t - 1 {
        let best = (j..t - 1).map(|l| r[l][j]).fold(f32::NEG_INFINITY, f32::max);
        forgetting += best - last[j];
        bwt += last[j] - r[j][j];
    }
    for j in 1..t {
        fwt += r[j - 1][j] - initial[j];
    }
    (acc, forgetting / k, bwt / k, fwt / k)
}

/// Avalanche's end-of-stream metrics of the same matrix, keyed by the names Avalanche logs
/// them under (`avalanche.evaluation.metrics`; experience = task):
///
/// - `Top1_Acc_Stream/eval_phase/test_stream/Task000`: accuracy over every test sample of the
///   stream, pooled (tasks weighted by their `test_samples`);
/// - `Top1_Acc_Exp/eval_phase/test_stream/Task{t:03}/Exp{j:03}`: the last row;
/// - `StreamForgetting/eval_phase/test_stream`: mean over all but the last task of the
///   accuracy right after learning it minus the final accuracy, `R[j][j] − R[T−1][j]` (not
///   the best earlier accuracy, as [`summarize`]'s forgetting);
/// - `StreamBWT/eval_phase/test_stream`: its negative;
/// - `StreamForwardTransfer/eval_phase/test_stream`: mean over all but the first task of the
///   accuracy just before learning it minus that of the model before any learning.
///
/// `task_label[j]` is the task label of experience `j` (0 for every experience in class- and
/// domain-incremental scenarios; `j` in task-incremental ones).
pub fn avalanche_metrics(
    r: &[Vec<f32>],
    initial: &[f32],
    test_samples: &[usize],
    task_label: &[usize],
) -> BTreeMap<String, f32> {
    let t = r.len();
    let last = &r[t - 1];
    let mut m = BTreeMap::new();
    let n: usize = test_samples[..t].iter().sum();
    let pooled = last[..t]
        .iter()
        .zip(test_samples)
        .map(|(a, &k)| a * k as f32)
        .sum::<f32>()
        / n.max(1) as f32;
    m.insert("Top1_Acc_Stream/eval_phase/test_stream/Task000".into(), pooled);
    for (j, a) in last.iter().enumerate() {
        m.insert(
            format!(
                "Top1_Acc_Exp/eval_phase/test_stream/Task{:03}/Exp{j:03}",
                task_label.get(j).copied().unwrap_or(0)
            ),
            *a,
        );
    }
    if t >= 2 {
        let f = (0..t - 1).map(|j| r[j][j] - last[j]).sum::<f32>() / (t - 1) as f32;
        m.insert("StreamForgetting/eval_phase/test_stream".into(), f);
        m.insert("StreamBWT/eval_phase/test_stream".into(), -f);
        let fwt = (1..t).map(|j| r[j - 1][j] - initial[j]).sum::<f32>() / (t - 1) as f32;
        m.insert("StreamForwardTransfer/eval_phase/test_stream".into(), fwt);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_of_a_hand_made_matrix() {
        // Three tasks; task 0 learned to 0.9, then forgotten to 0.6 and 0.3.
        let r = vec![vec![0.9, 0.1, 0.2], vec![0.6, 0.8, 0.3], vec![0.3, 0.5, 0.7]];
        let init = [0.1, 0.2, 0.1];
        let (acc, f, bwt, fwt) = summarize(&r, &init);
        assert!((acc - 0.5).abs() < 1e-6);
        // forgetting: task 0 max(0.9, 0.6) - 0.3 = 0.6; task 1 max(0.8) - 0.5 = 0.3.
        assert!((f - 0.45).abs() < 1e-6, "{f}");
        // bwt: (0.3 - 0.9 + 0.5 - 0.8) / 2.
        assert!((bwt + 0.45).abs() < 1e-6, "{bwt}");
        // fwt: ((0.1 - 0.2) + (0.3 - 0.1)) / 2.
        assert!((fwt - 0.05).abs() < 1e-6, "{fwt}");
    }

    #[test]
    fn avalanche_names_and_definitions() {
        let r = vec![vec![0.9, 0.1, 0.2], vec![0.6, 0.8, 0.3], vec![0.3, 0.5, 0.7]];
        let init = [0.1, 0.2, 0.1];
        let m = avalanche_metrics(&r, &init, &[10, 10, 20], &[0, 0, 0]);
        // Pooled: (0.3·10 + 0.5·10 + 0.7·20) / 40.
        assert!((m["Top1_Acc_Stream/eval_phase/test_stream/Task000"] - 0.55).abs() < 1e-6);
        // (0.9 − 0.3 + 0.8 − 0.5) / 2: after learning, not best earlier.
        assert!((m["StreamForgetting/eval_phase/test_stream"] - 0.45).abs() < 1e-6);
        assert!((m["StreamBWT/eval_phase/test_stream"] + 0.45).abs() < 1e-6);
        assert!((m["StreamForwardTransfer/eval_phase/test_stream"] - 0.05).abs() < 1e-6);
        assert_eq!(m["Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp002"], 0.7);
        // Where the best earlier accuracy is not the one right after learning, the two
        // forgetting definitions differ.
        let r = vec![vec![0.5, 0.0, 0.0], vec![0.9, 0.9, 0.0], vec![0.6, 0.6, 0.6]];
        let m = avalanche_metrics(&r, &[0.0; 3], &[1, 1, 1], &[0, 1, 2]);
        // ((0.5 − 0.6) + (0.9 − 0.6)) / 2 against ((0.9 − 0.6) + (0.9 − 0.6)) / 2.
        assert!((m["StreamForgetting/eval_phase/test_stream"] - 0.1).abs() < 1e-6);
        assert!((summarize(&r, &[0.0; 3]).1 - 0.3).abs() < 1e-6);
        assert!(m.contains_key("Top1_Acc_Exp/eval_phase/test_stream/Task001/Exp001"));
    }
}
