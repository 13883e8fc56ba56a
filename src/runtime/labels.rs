//! Where a stream's bins get their labels ([`BinLabels`]): a labels file (`--labels`, with the
//! class check), the label changes of a labelled source, live labels (`--live-labels -|FILE`:
//! lines `now LABEL`, `T_US LABEL` or `none`, read from standard input or a file followed as
//! it grows, on a thread of their own), or one constant label.

use std::collections::VecDeque;
use std::time::Duration;

use stdl_io::datasets::dvs_gesture::{parse_labels, LabelRow};
use stdl_io::frames::Frame;

use crate::error::{bail, Context, Result};

/// The label of each bin, at its middle: from the labels file if one is given, else from
/// the label changes (a labelled source's, and live labels), else the constant label.
#[derive(Debug, Default)]
pub struct BinLabels {
    /// Interval labels of the labels file (classes from 1).
    rows: Vec<LabelRow>,
    /// Label changes by time, oldest first (consumed as bins pass them).
    changes: VecDeque<(u64, Option<usize>)>,
    /// The label of every bin when nothing else applies.
    constant: Option<usize>,
    /// The network's classes (live labels beyond them are ignored, with a message).
    classes: usize,
}

impl BinLabels {
    /// Labels from `labels_csv` (checked against the `classes` of the preset), else from
    /// changes to come, else `constant`.
    ///
    /// # Errors
    /// An unreadable or malformed labels file, or a class outside `1..=classes`.
    pub fn new(
        labels_csv: Option<&std::path::Path>,
        constant: Option<usize>,
        classes: usize,
    ) -> Result<Self> {
        let rows = match labels_csv {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                let rows =
                    parse_labels(&text).map_err(|m| crate::Error::msg(format!("{}: {m}", p.display())))?;
                if let Some(r) = rows.iter().find(|r| r.class == 0 || r.class as usize > classes) {
                    bail!(
                        "{}: label class {} is not one of the preset's classes 1..={classes} (classes \
                         count from 1)",
                        p.display(),
                        r.class
                    );
                }
                rows
            }
            None => Vec::new(),
        };
        Ok(Self {
            rows,
            changes: VecDeque::new(),
            constant,
            classes,
        })
    }

    /// The source says: from `t_us` on, `label` (it sends a label only when it changes).
    pub fn source_label(&mut self, t_us: u64, label: usize) {
        self.changes.push_back((t_us, Some(label)));
    }

    /// Live label commands; "now" is `now_us` (the earliest time of the events just read:
    /// their bins are the ones to come).
    pub fn live(&mut self, cmds: impl IntoIterator<Item = LabelCmd>, now_us: u64) {
        for c in cmds {
            if let Some(l) = c.label.filter(|&l| l >= self.classes) {
                eprintln!(
                    "live label {l} ignored: the preset has classes 0..={} (0-based)",
                    self.classes - 1
                );
                continue;
            }
            self.changes.push_back((c.t_us.unwrap_or(now_us), c.label));
        }
        // Commands may name times out of order: keep the changes sorted by time.
        self.changes.make_contiguous().sort_by_key(|c| c.0);
    }

    /// The label of the bin `f` (0-based), at its middle; changes before it are consumed.
    pub fn of(&mut self, f: &Frame) -> Option<usize> {
        let mid = (f.t_start_us + f.t_end_us) / 2;
        if !self.rows.is_empty() {
            return self
                .rows
                .iter()
                .find(|r| r.start_us <= mid && mid < r.end_us)
                .map(|r| r.class as usize - 1);
        }
        if self.changes.is_empty() {
            return self.constant;
        }
        while self.changes.len() > 1 && self.changes[1].0 <= mid {
            self.changes.pop_front();
        }
        self.changes.front().filter(|c| c.0 <= mid).and_then(|c| c.1)
    }
}

/// One live label command: from time `t_us` (or the current stream time) on, `label`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelCmd {
    /// `None`: "now".
    pub t_us: Option<u64>,
    /// `None`: unlabelled.
    pub label: Option<usize>,
}

/// Parses one live-label line.
pub fn parse_label_line(line: &str) -> std::result::Result<Option<LabelCmd>, String> {
    let mut it = line.split_whitespace();
    let Some(first) = it.next() else { return Ok(None) };
    if first.starts_with('#') {
        return Ok(None);
    }
    let bad = || format!("live label line {line:?}: expected `now LABEL`, `T_US LABEL` or `none`");
    if first == "none" {
        return Ok(Some(LabelCmd {
            t_us: None,
            label: None,
        }));
    }
    let t_us = if first == "now" {
        None
    } else {
        Some(first.parse::<u64>().map_err(|_| bad())?)
    };
    let label = match it.next() {
        Some("none") => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| bad())?),
        None => return Err(bad()),
    };
    Ok(Some(LabelCmd { t_us, label }))
}

/// Reads live label lines on a thread: standard input, or a file followed as it grows.
pub(crate) fn spawn_live_labels(src: &str) -> crossbeam_channel::Receiver<LabelCmd> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let src = src.to_owned();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let send_line = |line: &str| match parse_label_line(line) {
            Ok(Some(c)) => tx.send(c).is_ok(),
            Ok(None) => true,
            Err(m) => {
                eprintln!("{m}");
                true
            }
        };
        if src == "-" {
            for line in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
                if !send_line(&line) {
                    return;
                }
            }
            return;
        }
        let mut pos = 0u64;
        let mut partial = String::new();
        loop {
            if let Ok(mut f) = std::fs::File::open(&src) {
                use std::io::{Read, Seek};
                if f.seek(std::io::SeekFrom::Start(pos)).is_ok() {
                    let mut buf = String::new();
                    if let Ok(n) = f.read_to_string(&mut buf) {
                        pos += n as u64;
                        partial.push_str(&buf);
                        while let Some(i) = partial.find('\n') {
                            let line: String = partial.drain(..=i).collect();
                            if !send_line(line.trim_end()) {
                                return;
                            }
                        }
                    }
                }
            }
            if tx.is_empty()
                && tx
                    .send(LabelCmd {
                        t_us: Some(u64::MAX),
                        label: None,
                    })
                    .is_err()
            {
                return; // the stream has ended
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(t0: u64, t1: u64) -> Frame {
        Frame {
            t_start_us: t0,
            t_end_us: t1,
            events: 0,
            data: Vec::new(),
        }
    }

    fn cmd(t_us: Option<u64>, label: Option<usize>) -> LabelCmd {
        LabelCmd { t_us, label }
    }

    #[test]
    fn a_bin_takes_the_label_at_its_middle() {
        let mut l = BinLabels::new(None, Some(2), 4).unwrap();
        assert_eq!(
            l.of(&bin(0, 10)),
            Some(2),
            "the constant label when nothing else applies"
        );
        l.source_label(100, 1);
        l.source_label(200, 3);
        assert_eq!(
            l.of(&bin(80, 110)),
            None,
            "the middle (95) is before the first change"
        );
        assert_eq!(l.of(&bin(100, 110)), Some(1));
        assert_eq!(
            l.of(&bin(190, 220)),
            Some(3),
            "the middle (205) is past the second change"
        );
    }

    #[test]
    fn live_labels_are_sorted_checked_and_now_is_the_batch_start() {
        let mut l = BinLabels::new(None, None, 4).unwrap();
        // Out of order, one out of range (ignored), "now" at 50.
        l.live(
            [
                cmd(Some(300), Some(2)),
                cmd(None, Some(1)),
                cmd(Some(100), Some(9)),
            ],
            50,
        );
        assert_eq!(l.of(&bin(40, 50)), None);
        assert_eq!(l.of(&bin(60, 70)), Some(1));
        assert_eq!(l.of(&bin(290, 320)), Some(2));
        l.live([cmd(None, None)], 400);
        assert_eq!(l.of(&bin(400, 420)), None, "`none` ends the label");
    }

    #[test]
    fn a_labels_file_wins_and_its_classes_are_checked() {
        let dir = std::env::temp_dir().join(format!("stdl-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.csv");
        std::fs::write(&good, "class,startTime_usec,endTime_usec\n3,100,200\n").unwrap();
        let mut l = BinLabels::new(Some(&good), Some(0), 4).unwrap();
        l.source_label(0, 1);
        assert_eq!(l.of(&bin(120, 130)), Some(2), "class 3 of the file is label 2");
        assert_eq!(l.of(&bin(300, 310)), None, "outside every interval: no label");
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "class,startTime_usec,endTime_usec\n5,100,200\n").unwrap();
        let e = BinLabels::new(Some(&bad), None, 4).unwrap_err().to_string();
        assert!(e.contains("bad.csv") && e.contains("1..=4"), "{e}");
    }

    #[test]
    fn live_label_lines() {
        assert_eq!(
            parse_label_line("now 3"),
            Ok(Some(LabelCmd {
                t_us: None,
                label: Some(3)
            }))
        );
        assert_eq!(
            parse_label_line("1500 2"),
            Ok(Some(LabelCmd {
                t_us: Some(1500),
                label: Some(2)
            }))
        );
        assert_eq!(
            parse_label_line("none"),
            Ok(Some(LabelCmd {
                t_us: None,
                label: None
            }))
        );
        assert_eq!(parse_label_line("  # comment"), Ok(None));
        assert_eq!(parse_label_line(""), Ok(None));
        assert!(parse_label_line("now").is_err());
        assert!(parse_label_line("soon 3").is_err());
    }
}
