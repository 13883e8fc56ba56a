//! `stdl info`: what a recording holds.

pub use stdl_io::info::{info, Info};
use stdl_io::Event;

fn ev(e: &Option<Event>) -> String {
    match e {
        Some(e) => format!("t_us={} x={} y={} on={}", e.t_us, e.x, e.y, e.on),
        None => "-".into(),
    }
}

/// Human-readable block.
pub fn print_text(i: &Info) {
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    println!("{}", i.path.display());
    println!("  format       {}", i.format);
    println!("  size         {}x{} ({})", i.width, i.height, i.size_source);
    println!("  events       {} ({} on, {} off)", i.events, i.on, i.off);
    println!(
        "  time         {} .. {} us ({:.6} s)",
        opt(i.t_first_us),
        opt(i.t_last_us),
        i.duration_us as f64 * 1e-6
    );
    println!("  rate         {:.0} events/s", i.event_rate_per_s);
    println!("  first event  {}", ev(&i.first_event));
    println!("  last event   {}", ev(&i.last_event));
    if let (Some(x), Some(y)) = (i.x_range, i.y_range) {
        println!("  extent       x {}..{}, y {}..{}", x[0], x[1], y[0], y[1]);
    }
    let s = &i.stats;
    println!(
        "  skipped      {} records, {} packets; {} invalid events; {} backwards timestamps; {} overflows",
        s.skipped_records, s.skipped_packets, s.invalid_events, s.backwards_timestamps, s.timestamp_overflows
    );
    println!(
        "  time jumps   {} beyond the maximum gap; largest step {:.6} s",
        i.time_jumps,
        i.largest_gap_us as f64 * 1e-6
    );
}
