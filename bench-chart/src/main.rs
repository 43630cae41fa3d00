//! `bench-chart RESULTS.json OUT.png`: the benchmark chart. Left, ns per packet above the
//! XDP_PASS baseline for a tracked and a new flow (rr, IPv4, smallest connection table) per
//! forwarding method; middle, throughput over veth (peak delivered, generator unpaced) per
//! forwarding method; right, connections per second through lb and through nftables DNAT.

use anyhow::{Context as _, Result, bail};
use plotters::prelude::*;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else { bail!("usage: bench-chart RESULTS.json OUT.png") };
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(input).with_context(|| input.clone())?)?;
    draw(&v, output)
}

fn median(v: &serde_json::Value) -> f64 {
    let mut x: Vec<f64> = v.as_array().map(|a| a.iter().filter_map(|n| n.as_f64()).collect()).unwrap_or_default();
    x.sort_by(|a, b| a.total_cmp(b));
    x.get(x.len() / 2).copied().unwrap_or(0.0)
}

fn draw(v: &serde_json::Value, output: &str) -> Result<()> {
    let root = BitMapBackend::new(output, (1600, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let title =
        format!("lb benchmarks — {} — kernel {}", v["date"].as_str().unwrap_or(""), v["kernel"].as_str().unwrap_or(""));
    let root = root.titled(&title, ("sans-serif", 20))?;
    let (left, rest) = root.split_horizontally(650);
    let (middle, right) = rest.split_horizontally(550);

    // Per packet: (method, established, new) above XDP_PASS.
    let cases = v["per_packet"]["cases"].as_array().cloned().unwrap_or_default();
    let fill = cases.iter().filter_map(|c| c["conntrack"].as_u64()).min().unwrap_or(0);
    let bars: Vec<(String, f64, f64)> = ["NAT", "DR", "TUN"]
        .iter()
        .filter_map(|m| {
            let c = cases.iter().find(|c| {
                c["scheduler"] == "rr"
                    && c["method"] == *m
                    && c["ipv6"] == false
                    && c["conntrack"].as_u64() == Some(fill)
            })?;
            Some((m.to_string(), c["established_over_pass_ns"].as_f64()?, c["new_over_pass_ns"].as_f64()?))
        })
        .collect();
    let top = bars.iter().map(|b| b.1.max(b.2)).fold(100.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&left)
        .caption("ns per packet above XDP_PASS (rr, IPv4, BPF_PROG_TEST_RUN)", ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..(bars.len() as f64 * 3.0), 0.0..top)?;
    chart.configure_mesh().disable_x_mesh().disable_x_axis().y_desc("ns").draw()?;
    for (i, (m, est, new)) in bars.iter().enumerate() {
        let x = i as f64 * 3.0 + 0.5;
        chart.draw_series([Rectangle::new([(x, 0.0), (x + 1.0, *est)], BLUE.filled())])?;
        chart.draw_series([Rectangle::new([(x + 1.0, 0.0), (x + 2.0, *new)], RED.mix(0.7).filled())])?;
        chart.draw_series([Text::new(
            m.clone(),
            (x + 0.6, top * 0.04),
            ("sans-serif", 14).into_font().color(&WHITE),
        )])?;
    }
    chart
        .draw_series([Rectangle::new([(0.0, 0.0), (0.0, 0.0)], BLUE.filled())])?
        .label("tracked flow")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], BLUE.filled()));
    chart
        .draw_series([Rectangle::new([(0.0, 0.0), (0.0, 0.0)], RED.mix(0.7).filled())])?
        .label("new flow")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RED.mix(0.7).filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;

    // Throughput over veth: what each method delivered with the generator unpaced.
    let t = &v["throughput"];
    let tput: Vec<(&str, f64, RGBColor)> = [
        ("lb XDP", "ours", BLUE),
        ("nft DNAT", "nft", GREEN),
        ("forwarding", "forward", RGBColor(128, 128, 128)),
        ("XDP ceiling", "ceiling", RGBColor(200, 120, 0)),
    ]
    .iter()
    .map(|(name, key, color)| (*name, median(&t[*key]["unpaced_pps"]) / 1e6, *color))
    .collect();
    bar_chart(&middle, "veth throughput, peak delivered (Mpps)", &tput, 2)?;

    // Connections per second.
    let ours = median(&v["connections_per_second"]["ours_cps"]);
    let nft = median(&v["connections_per_second"]["nft_cps"]);
    bar_chart(
        &right,
        "connections per second through the VIP",
        &[("lb XDP NAT", ours, BLUE), ("nftables DNAT", nft, GREEN)],
        0,
    )?;
    root.present()?;
    Ok(())
}

/// One bar per (name, value, colour), labelled with its value to `decimals` places.
fn bar_chart(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    caption: &str,
    values: &[(&str, f64, RGBColor)],
    decimals: usize,
) -> Result<()> {
    let top = values.iter().map(|v| v.1).fold(0.0, f64::max).max(1e-9) * 1.2;
    let width = values.len() as f64 * 2.5;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..width, 0.0..top)?;
    chart.configure_mesh().disable_x_mesh().disable_x_axis().draw()?;
    for (i, (name, val, color)) in values.iter().enumerate() {
        let x = i as f64 * 2.5 + 0.5;
        chart.draw_series([Rectangle::new([(x, 0.0), (x + 1.5, *val)], color.filled())])?;
        chart.draw_series([Text::new(
            format!("{name}: {val:.decimals$}"),
            (x, val + top * 0.03),
            ("sans-serif", 13),
        )])?;
    }
    Ok(())
}
