//! Live labels (`stdl stream --live-labels -|FILE`): lines `now LABEL`, `T_US LABEL` or
//! `none`, read from standard input or a file followed as it grows, on a thread of their own.

use std::time::Duration;

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
