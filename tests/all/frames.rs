//! Frames: both edge conventions, the streaming binner, downsampling and filters, with
//! hand-computed numbers.

use stdl::io::frames::{
    bin_ranges, frames_from_events, Channels, DenoiseFilter, Edge, EventFilter, Frame, Geometry,
    RefractoryFilter, Slicing, StreamBinner,
};
use stdl::io::{Event, SensorSize};

fn ev(t: u64, x: u16, y: u16, on: bool) -> Event {
    Event::new(t, x, y, on)
}

fn ranges(events: &[Event], s: Slicing, e: Edge) -> Vec<(usize, usize)> {
    bin_ranges(events, s, e)
        .unwrap()
        .into_iter()
        .map(|(r, _, _)| (r.start, r.end))
        .collect()
}

#[test]
fn event_bins_both_edges() {
    // 10 events, 3 bins: stride 3. SpikingJelly: last bin takes the remainder; Tonic: dropped.
    let events: Vec<Event> = (0..10).map(|i| ev(i * 10, 0, 0, true)).collect();
    let s = Slicing::EventBins { n: 3, overlap: 0.0 };
    assert_eq!(ranges(&events, s, Edge::ToLast), vec![(0, 3), (3, 6), (6, 10)]);
    assert_eq!(ranges(&events, s, Edge::Drop), vec![(0, 3), (3, 6), (6, 9)]);
    // Overlap 0.5, as Tonic's `slice_events_by_event_bins`: windows of ⌊3 · 1.5⌋ = 4
    // events, one every ⌊4 · 0.5⌋ = 2.
    let s = Slicing::EventBins { n: 3, overlap: 0.5 };
    assert_eq!(ranges(&events, s, Edge::Drop), vec![(0, 4), (2, 6), (4, 8)]);
    assert_eq!(ranges(&events, s, Edge::ToLast), vec![(0, 4), (2, 6), (4, 10)]);
}

#[test]
fn time_bins_both_edges() {
    // t = 0..=100 step 10 (11 events); 3 bins: stride (100 - 0) / 3 = 33 us.
    let events: Vec<Event> = (0..=10).map(|i| ev(i * 10, 0, 0, i % 2 == 0)).collect();
    let s = Slicing::TimeBins { n: 3, overlap: 0.0 };
    // [0,33) -> 0,10,20,30 ; [33,66) -> 40,50,60 ; [66, 99) -> 70,80,90 ; 100 is remainder.
    assert_eq!(ranges(&events, s, Edge::ToLast), vec![(0, 4), (4, 7), (7, 11)]);
    assert_eq!(ranges(&events, s, Edge::Drop), vec![(0, 4), (4, 7), (7, 10)]);
    // Overlap 0.25, as Tonic's `slice_events_by_time_bins`: windows of 33 · 1.25 = 41.25 us
    // starting every 41.25 · 0.75 = 30.9375 us: [0, 41.25), [30.94, 72.19), [61.88, 103.13).
    let s = Slicing::TimeBins { n: 3, overlap: 0.25 };
    assert_eq!(ranges(&events, s, Edge::Drop), vec![(0, 5), (4, 8), (7, 11)]);
}

#[test]
fn time_windows() {
    let events: Vec<Event> = (0..=10).map(|i| ev(1000 + i * 10, 0, 0, true)).collect();
    // Windows of 30 us every 30 us over a 101 us span: 3 whole windows, remainder 90..100.
    let s = Slicing::TimeWindow {
        window_us: 30,
        stride_us: 30,
    };
    assert_eq!(ranges(&events, s, Edge::Drop), vec![(0, 3), (3, 6), (6, 9)]);
    assert_eq!(ranges(&events, s, Edge::ToLast), vec![(0, 3), (3, 6), (6, 11)]);
    // Overlapping windows: 40 us every 20 us.
    let s = Slicing::TimeWindow {
        window_us: 40,
        stride_us: 20,
    };
    assert_eq!(
        ranges(&events, s, Edge::Drop),
        vec![(0, 4), (2, 6), (4, 8), (6, 10)]
    );
}

#[test]
fn frame_counts_channels_and_downsampling() {
    let sensor = SensorSize::new(4, 4);
    let events = vec![
        ev(0, 0, 0, true),
        ev(1, 0, 0, true),
        ev(2, 3, 3, false),
        ev(3, 1, 1, false),
        ev(4, 9, 9, true),
    ];
    let g = Geometry::new(sensor, Channels::Split).unwrap();
    let f = frames_from_events(
        &events,
        &g,
        Slicing::EventBins { n: 1, overlap: 0.0 },
        Edge::ToLast,
    )
    .unwrap();
    assert_eq!(f.len(), 1);
    let d = &f[0].data;
    assert_eq!(d.len(), 32);
    assert_eq!(d[16], 2.0); // ON channel (1), pixel (0,0)
    assert_eq!(d[15], 1.0); // OFF channel (0), pixel (3,3)
    assert_eq!(d[5], 1.0); // OFF (1,1)
    assert_eq!(f[0].events, 4); // the off-sensor event is not counted
                                // Factor-2 downsampling, merged polarity: (0,0),(0,0),(1,1) -> cell (0,0); (3,3) -> (1,1).
    let g = Geometry::downsampled(sensor, 2, Channels::Merged).unwrap();
    let f = frames_from_events(
        &events,
        &g,
        Slicing::EventBins { n: 1, overlap: 0.0 },
        Edge::ToLast,
    )
    .unwrap();
    assert_eq!(f[0].data, vec![3.0, 0.0, 0.0, 1.0]);
    // Resizing to a target: 346 -> 87 columns maps x = 345 to 86.
    let g = Geometry::resized(
        SensorSize::new(346, 260),
        SensorSize::new(87, 65),
        Channels::Merged,
    )
    .unwrap();
    assert_eq!(g.index(&ev(0, 345, 259, true)), Some(64 * 87 + 86));
    assert!(Geometry::resized(sensor, SensorSize::new(8, 8), Channels::Merged).is_err());
}

#[test]
fn streaming_binner_closes_on_event_time_and_emits_empty_bins() {
    let g = Geometry::new(SensorSize::new(2, 2), Channels::Merged).unwrap();
    let mut b = StreamBinner::new(g, 100).unwrap();
    let mut out: Vec<Frame> = Vec::new();
    b.push(&[ev(1000, 0, 0, true), ev(1050, 1, 0, true)], |f| out.push(f));
    assert!(
        out.is_empty(),
        "the open bin is not emitted before an event closes it"
    );
    // 1350 closes [1000,1100), and the empty [1100,1200), [1200,1300).
    b.push(&[ev(1350, 1, 1, false)], |f| out.push(f));
    assert_eq!(out.len(), 3);
    assert_eq!(
        (out[0].t_start_us, out[0].t_end_us, out[0].events),
        (1000, 1100, 2)
    );
    assert_eq!(out[0].data, vec![1.0, 1.0, 0.0, 0.0]);
    assert_eq!((out[1].events, out[2].events), (0, 0));
    assert_eq!(out[2].t_end_us, 1300);
    // A late event (time went backwards) is counted into the open bin.
    b.push(&[ev(1200, 0, 1, true)], |f| out.push(f));
    let stats = b.finish(true, |f| out.push(f));
    assert_eq!(out.len(), 4);
    assert_eq!(out[3].data, vec![0.0, 0.0, 1.0, 1.0]);
    assert_eq!(stats.late_events, 1);
    assert_eq!(stats.empty_frames, 2);
}

#[test]
fn streaming_binner_matches_whole_sample_windows_for_any_batching() {
    let sensor = SensorSize::new(8, 8);
    let g = Geometry::new(sensor, Channels::Split).unwrap();
    let mut rng = stdl::io::datasets::SplitMix64(7);
    let mut t = 0;
    let events: Vec<Event> = (0..2000)
        .map(|_| {
            t += rng.below(40);
            ev(t, rng.below(8) as u16, rng.below(8) as u16, rng.below(2) == 1)
        })
        .collect();
    let whole = frames_from_events(
        &events,
        &g,
        Slicing::TimeWindow {
            window_us: 250,
            stride_us: 250,
        },
        Edge::Drop,
    )
    .unwrap();
    for batch in [1usize, 7, 500, 2000] {
        let mut b = StreamBinner::new(g, 250).unwrap();
        let mut out = Vec::new();
        for c in events.chunks(batch) {
            b.push(c, |f| out.push(f));
        }
        b.finish(false, |_| {});
        // The streamed bins are the whole windows; the final partial one was not emitted.
        assert_eq!(out.len(), whole.len(), "batch {batch}");
        assert!(out == whole, "batch {batch}");
    }
    // Overlapping windows: each frame is the sum of the last k strides.
    let mut b = StreamBinner::windowed(g, 250, 500).unwrap();
    let mut out = Vec::new();
    b.push(&events, |f| out.push(f));
    for i in 1..out.len() {
        let sum: Vec<f32> = whole[i - 1]
            .data
            .iter()
            .zip(&whole[i].data)
            .map(|(a, b)| a + b)
            .collect();
        assert_eq!(out[i].data, sum);
        assert_eq!(out[i].t_end_us - out[i].t_start_us, 500);
    }
    assert!(StreamBinner::windowed(g, 250, 600).is_err());
}

#[test]
fn denoise_filter_drops_isolated_events() {
    let mut f = DenoiseFilter::new(SensorSize::new(10, 10), 100);
    assert!(!f.keep(&ev(0, 5, 5, true)), "no support yet");
    assert!(f.keep(&ev(50, 6, 6, true)), "diagonal neighbour 50 us earlier");
    assert!(!f.keep(&ev(500, 0, 0, true)), "isolated");
    assert!(!f.keep(&ev(700, 1, 0, false)), "neighbour too old (200 us)");
    assert!(!f.keep(&ev(701, 9, 9, true)));
    assert!(f.keep(&ev(750, 8, 9, true)));
    assert!(!f.keep(&ev(760, 10, 3, true)), "off the sensor");
}

#[test]
fn refractory_filter() {
    let mut f = RefractoryFilter::new(SensorSize::new(4, 4), 100);
    assert!(f.keep(&ev(0, 1, 1, true)));
    assert!(!f.keep(&ev(99, 1, 1, false)));
    assert!(f.keep(&ev(100, 1, 1, true)));
    assert!(f.keep(&ev(150, 2, 1, true)));
    let mut v = vec![ev(0, 0, 0, true), ev(10, 0, 0, true), ev(200, 0, 0, true)];
    f.retain(&mut v);
    assert_eq!(v.len(), 2);
}
