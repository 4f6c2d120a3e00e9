//! A hand-written SVG chart: demand and agents over time, waits per strategy.

use std::fmt::Write as _;

use crate::report::Report;
use crate::Trace;

const COLORS: [&str; 6] = [
    "#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#ff7f0e", "#7f7f7f",
];

/// The chart for `report` on `trace`: on top, the trace's demand (builds that
/// would be running if each started at once) and every strategy's agents over
/// time; below, each strategy's p50 / p95 / p99 queue wait.
pub fn chart(report: &Report, trace: &Trace) -> String {
    let (w, top, bottom) = (960.0, 320.0, 220.0);
    let (left, right) = (60.0, 20.0);
    let plot_w = w - left - right;
    let end_s = report
        .strategies
        .iter()
        .map(|s| s.simulated_s)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = report
        .strategies
        .iter()
        .find_map(|s| s.samples.get(1).map(|x| x.t_s))
        .unwrap_or(60)
        .max(1) as f64;
    let demand: Vec<(f64, f64)> = (0..=(end_s / step) as u64)
        .map(|i| {
            let t = i as f64 * step;
            let n = trace
                .builds
                .iter()
                .filter(|b| b.submit_s <= t && t < b.submit_s + b.duration_s)
                .count();
            (t, n as f64)
        })
        .collect();
    let ymax = report
        .strategies
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| x.agents as f64))
        .chain(demand.iter().map(|d| d.1))
        .fold(1.0, f64::max);
    let x = |t: f64| left + t / end_s * plot_w;
    let y = |v: f64| 30.0 + (1.0 - v / ymax) * (top - 60.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#,
        h = top + bottom
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="18" font-size="13">Demand (builds running if started at once) and agents over time</text>"#
    );
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/>"#,
        b = y(0.0),
        r = left + plot_w
    );
    for h in (0..=(end_s / 3600.0) as u64).step_by(((end_s / 3600.0 / 12.0).ceil() as usize).max(1))
    {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{h}h</text>"#,
            x(h as f64 * 3600.0),
            y(0.0) + 14.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{ymax:.0}</text>"#,
        left - 4.0,
        y(ymax) + 4.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">0</text>"#,
        left - 4.0,
        y(0.0)
    );
    let line = |points: &mut dyn Iterator<Item = (f64, f64)>| {
        points
            .map(|(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        s,
        r#"<polyline fill="none" stroke="black" stroke-width="2" stroke-dasharray="4 2" points="{}"/>"#,
        line(&mut demand.iter().copied())
    );
    let mut legend = vec![("demand".to_owned(), "black")];
    for (i, st) in report
        .strategies
        .iter()
        .enumerate()
        .filter(|(_, st)| !st.samples.is_empty())
    {
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{}"/>"#,
            line(&mut st.samples.iter().map(|p| (p.t_s as f64, p.agents as f64)))
        );
        legend.push((format!("{} agents", st.name), color));
    }
    for (i, (name, color)) in legend.iter().enumerate() {
        let lx = left + 10.0 + (i % 4) as f64 * 200.0;
        let ly = 40.0 + (i / 4) as f64 * 14.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{:.1}" width="10" height="3" fill="{color}"/><text x="{:.1}" y="{:.1}">{name}</text>"#,
            ly - 4.0,
            lx + 14.0,
            ly
        );
    }
    // Waits: grouped bars.
    let base = top + bottom - 30.0;
    let wmax = report
        .strategies
        .iter()
        .map(|s| s.waits.p99)
        .fold(1.0, f64::max);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="{:.1}" font-size="13">Queue wait p50 / p95 / p99 (s), max {wmax:.0}</text>"#,
        top + 8.0
    );
    let group = plot_w / report.strategies.len().max(1) as f64;
    for (i, st) in report.strategies.iter().enumerate() {
        let gx = left + i as f64 * group;
        for (j, (v, shade)) in [
            (st.waits.p50, 0.45),
            (st.waits.p95, 0.7),
            (st.waits.p99, 1.0),
        ]
        .iter()
        .enumerate()
        {
            let hgt = v / wmax * (bottom - 70.0);
            let bx = gx + 10.0 + j as f64 * (group - 20.0) / 3.0;
            let _ = writeln!(
                s,
                r#"<rect x="{bx:.1}" y="{:.1}" width="{:.1}" height="{hgt:.1}" fill="{}" fill-opacity="{shade}"><title>{} {:.1}s</title></rect>"#,
                base - hgt,
                (group - 24.0) / 3.0,
                COLORS[i % COLORS.len()],
                st.name,
                v
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + group / 2.0,
            base + 14.0,
            st.name
        );
    }
    s.push_str("</svg>\n");
    s
}
