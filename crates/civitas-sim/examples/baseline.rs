//! Runs a scenario's baseline (no Civitas: clients read the remote services straight through
//! the emulated links) and prints the paper's table: a calibration aid for the scenario's
//! figures.
//!
//! ```sh
//! cargo run -p civitas-sim --example baseline -- one 30        # scenario, seconds, default scale
//! cargo run -p civitas-sim --example baseline -- two 30 5 40   # … time and size factors
//! ```
//!
//! With `CIVITAS_SIM_OUT=DIR` it also writes `DIR/samples.csv` and `DIR/chart.svg`.

use std::collections::BTreeMap;
use std::time::Duration;

use civitas_sim::chart::{ChartOptions, write_svg};
use civitas_sim::clients::{RequestTypeReport, format_table, write_csv};
use civitas_sim::{ClientRun, Deployment, Scale, Scenario};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("one", String::as_str);
    let seconds: u64 = args.get(1).map_or(Ok(30), |s| s.parse())?;
    let scale = match (args.get(2), args.get(3)) {
        (Some(t), Some(s)) => Scale::new(t.parse()?, s.parse()?)?,
        _ => Scale::DEFAULT,
    };
    let scenario = Scenario::named(name, scale).ok_or_else(|| anyhow::anyhow!("no scenario {name:?}"))?;
    let deployment = Deployment::start(&scenario).await?;
    let run = ClientRun::start(&scenario.client_plans(deployment.endpoints(), &BTreeMap::new())?)?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let samples = run.stop(Duration::from_secs(30)).await;
    let rows: Vec<_> =
        scenario.request_mix.iter().map(|m| RequestTypeReport::from_samples(&samples, m.name, false)).collect();
    println!("{} — baseline for {seconds} s; trigger {:?}", scenario.title, scenario.trigger_response_time);
    print!("{}", format_table(&rows));
    for city in &scenario.cities {
        println!("bytes sent from {}: {}", city.name, deployment.bytes_sent_from(&city.name));
    }
    if let Some(dir) = std::env::var_os("CIVITAS_SIM_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir)?;
        write_csv(&dir.join("samples.csv"), &samples)?;
        let names: Vec<&str> = scenario.request_mix.iter().map(|m| m.name).collect();
        write_svg(
            &dir.join("chart.svg"),
            &samples,
            &names,
            &ChartOptions::titled(format!("{} — baseline", scenario.title)),
        )?;
        println!("wrote {}/samples.csv and chart.svg", dir.display());
    }
    deployment.shutdown().await;
    Ok(())
}
