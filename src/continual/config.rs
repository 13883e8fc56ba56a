//! A continual-learning run's settings as data ([`ContinualConfig`]: the learning settings
//! of [`crate::config::LearnConfig`], the tasks and the protocol), and the command line's task
//! and learner names parsed into them.

use serde::{Deserialize, Serialize};

use crate::config::LearnConfig;
use crate::error::{ensure, Context, Result};

/// How tasks relate to the label space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Class-incremental: one head over all classes of all tasks.
    #[default]
    Class,
    /// Domain-incremental: the label is the class's position within its task.
    Domain,
    /// Task-incremental: predictions among the sample's own task's classes.
    Task,
}

impl Protocol {
    /// Every protocol, in the order the command line lists them.
    pub const ALL: [Protocol; 3] = [Protocol::Class, Protocol::Domain, Protocol::Task];
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Class => "class",
            Protocol::Domain => "domain",
            Protocol::Task => "task",
        })
    }
}

/// A learner named as on the command line (`--compare`, `stdl demo continual --runs`):
/// `naive`, `ewc`, `lwf`, `replay` (naive with replay) or `STRATEGY+replay`. Returns the
/// strategy and whether it replays.
///
/// # Errors
/// An unknown strategy name.
pub fn parse_learner(name: &str) -> Result<(crate::stdl::StrategyKind, bool)> {
    let (strategy, replay) = match name.strip_suffix("+replay") {
        Some(s) => (s, true),
        None if name == "replay" => ("naive", true),
        None => (name, false),
    };
    Ok((strategy.parse().map_err(crate::error::Error::msg)?, replay))
}

/// Parses a task list: tasks separated by `/`, classes within a task by `,`, e.g.
/// `0,1/2,3/4,5/6,7/8,9`. A class may appear in one task only.
pub fn parse_tasks(s: &str) -> Result<Vec<Vec<usize>>> {
    let mut tasks = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (k, part) in s.split('/').enumerate() {
        let mut task = Vec::new();
        for c in part.split(',') {
            let c = c.trim();
            ensure!(
                !c.is_empty(),
                "task {k} of {s:?} has an empty class; write tasks like \"0,1/2,3\""
            );
            let class: usize = c
                .parse()
                .with_context(|| format!("class {c:?} in task {k} of {s:?} is not a class index"))?;
            ensure!(
                seen.insert(class),
                "class {class} appears in more than one task of {s:?}"
            );
            task.push(class);
        }
        tasks.push(task);
    }
    ensure!(
        tasks.len() >= 2,
        "continual learning needs at least two tasks, got {s:?}"
    );
    Ok(tasks)
}

/// Settings of a continual-learning run (`continual.json` holds them; `--config FILE` reads
/// them back).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContinualConfig {
    /// Data, network, method and optimiser (the batch: new samples; replayed ones come on
    /// top; the learning rate is constant: a stream has no last epoch to anneal towards).
    #[serde(flatten)]
    pub learn: LearnConfig,
    /// Classes of each task, in order.
    pub tasks: Vec<Vec<usize>>,
    /// Protocol.
    pub protocol: Protocol,
    /// Passes over each task's stream.
    pub epochs_per_task: usize,
    /// Replay budget in bytes (0: no replay).
    pub replay_bytes: u64,
    /// Use at most this many training and this many test samples of each class.
    pub samples_per_class: Option<usize>,
    /// Continual-learning strategy of every stage (STDL only).
    #[serde(default)]
    pub strategy: crate::stdl::StrategyConfig,
}

impl Default for ContinualConfig {
    /// Split MNIST on N-MNIST: five class-incremental tasks of two digits, one pass each,
    /// no replay, naive.
    fn default() -> Self {
        Self {
            learn: LearnConfig::default(),
            tasks: (0..5).map(|k| vec![2 * k, 2 * k + 1]).collect(),
            protocol: Protocol::Class,
            epochs_per_task: 1,
            replay_bytes: 0,
            samples_per_class: None,
            strategy: crate::stdl::StrategyConfig::default(),
        }
    }
}

impl ContinualConfig {
    /// Checks the settings: [`LearnConfig::validate`], at least two tasks of distinct classes,
    /// a pass per task, a valid strategy.
    ///
    /// # Errors
    /// The first setting that is out of range.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.learn.validate()?;
        if self.tasks.len() < 2 || self.tasks.iter().any(Vec::is_empty) {
            return Err(format!(
                "continual learning needs at least two non-empty tasks, got {:?}",
                self.tasks
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(c) = self.tasks.iter().flatten().find(|&&c| !seen.insert(c)) {
            return Err(format!("class {c} is in more than one task: {:?}", self.tasks));
        }
        if self.epochs_per_task == 0 {
            return Err("--epochs-per-task must be at least 1".into());
        }
        if self.samples_per_class == Some(0) {
            return Err("--samples-per-class must be at least 1".into());
        }
        self.strategy.validate()
    }

    /// Reads a configuration saved as TOML or JSON, and validates it.
    ///
    /// # Errors
    /// An unreadable or malformed file, or a setting out of range.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        crate::store::load_config(path, Self::validate)
    }
}
