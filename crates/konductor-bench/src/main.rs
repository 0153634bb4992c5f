//! `konductor-bench`: Konductor's benchmark suite.
//!
//! ```text
//! cargo run --release -p konductor-bench -- [--quick] [--only release,throughput,flatness,footprint,locks,once,waitgroup,gate,ratelimit,cost,etcd,dashboard,python]
//! ```
//!
//! Starts fresh release-built `konductor server` processes on temporary data
//! directories and loopback ports, drives them with real `koncli` processes and
//! in-process SDK clients, and prints one JSON line per figure as it is measured, then a
//! Markdown table with each figure's target. `--quick` shrinks every size to finish in
//! under a minute. Run from cargo, it first builds `konductor` and `koncli` in release
//! mode; `--konductor` / `--koncli` benchmark other builds (e.g. an older commit's).
//!
//! # Layout
//! - [`report`]: figures, targets, JSON lines and the table.
//! - [`server`]: a `konductor server` process and what is read off it.
//! - [`release`]: release latency, ours beside the Go SDK's polling waiters.
//! - [`throughput`]: clients creating barriers and arriving until all are Open.
//! - [`footprint`]: idle memory, `koncli barrier status` wall time, binary sizes.
//! - [`locks`]: acquire → grant, release → next grant, Mutex handovers per second.
//! - [`cost`]: requests and watch events per second that waiting and holding clients
//!   cost the server, beside pollers.
//! - [`etcd`]: concurrent `koncli mutex run` beside concurrent `etcdctl lock`.
//! - [`dashboard`]: `koncli dashboard` in headless Chromium with a large set stored.
//! - [`python`]: the Python SDK beside the Rust SDK and `koncli`.

mod cost;
mod dashboard;
mod etcd;
mod footprint;
mod gate;
mod locks;
mod once;
mod python;
mod release;
mod report;
mod server;
mod throughput;
mod waitgroup;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};

use crate::release::Waiter;
use crate::report::{Figure, Report, Target, quantile, sorted};
use crate::server::ServerProcess;
use crate::throughput::{Load, LoadResult};

/// Konductor's benchmark suite: release latency, throughput, flatness and footprint.
#[derive(Parser)]
#[command(name = "konductor-bench", version, about)]
struct Args {
    /// Smaller sizes, to finish in under a minute.
    #[arg(long)]
    quick: bool,
    /// Only these groups (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Group>,
    /// The `konductor` binary to benchmark [default: the release build beside this one].
    #[arg(long, value_name = "PATH")]
    konductor: Option<PathBuf>,
    /// The `koncli` binary to benchmark [default: the release build beside this one].
    #[arg(long, value_name = "PATH")]
    koncli: Option<PathBuf>,
    /// Client counts for the throughput group [default: 16 and 64; 16 with --quick].
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    clients: Vec<usize>,
    /// Only the one large barrier in the throughput group (1 × 10,000; seconds instead
    /// of a minute: for long alternating series when comparing builds).
    #[arg(long)]
    large_only: bool,
    /// The Python interpreter for the python group, with `python/` installed [default:
    /// $KONDUCTOR_SDK_VENV/bin/python, else /tmp/konductor-sdk-venv/bin/python].
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
}

/// The groups of figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Group {
    /// Opening arrival acknowledged → waiters return, ours and the Go SDK's.
    Release,
    /// Arrivals per second until every barrier is Open.
    Throughput,
    /// Arrivals per second with few vs many barriers already stored.
    Flatness,
    /// Idle memory, `koncli barrier status` wall time, binary sizes.
    Footprint,
    /// Lock grants and handovers.
    Locks,
    /// 100 concurrent `koncli once run` on a fresh key.
    Once,
    /// 1 × 10,000 WaitGroup members, each added then done, beside the barrier's 1 ×
    /// 10,000 arrivals.
    Waitgroup,
    /// 1,000 Gates each on its own Job, all Jobs completed: until every Gate is Open;
    /// and one Job's completion → its Gate Open.
    Gate,
    /// What 1,000 waiting or holding clients cost the API server: requests and watch
    /// events per second, beside 1,000 pollers (not in the default run: 11 minutes).
    Cost,
    /// A RateLimit's grants per second at a limit far above demand beside a Mutex's
    /// handovers per second (alternating rounds), and three locks held at once
    /// (`hold_all`) beside one acquire.
    Ratelimit,
    /// `koncli dashboard` in headless Chromium with 1,000 Barriers, 100 Mutexes × 100
    /// waiting Permits and a 10,000-member WaitGroup: first render, DOM size, the
    /// dashboard's memory, an arrival → the page showing it (not in the default run:
    /// needs chromium and chromedriver — `.ci/run` installs them).
    Dashboard,
    /// The Python SDK beside the Rust SDK and `koncli`, alternating on fresh servers: a
    /// free Mutex acquired, a Mutex handed over between two processes, 100 waiters
    /// released by one arrival (not in the default run: needs a virtualenv with
    /// `python/` installed — `scripts/bench-python.sh` makes one).
    Python,
    /// N concurrent `koncli mutex run` beside N concurrent `etcdctl lock`, N = 10, 30
    /// and 100, five alternating rounds each (not in the default run: needs etcd and
    /// etcdctl on the PATH — `scripts/bench-etcd.sh` installs them).
    Etcd,
}

/// What a run measures and with what.
struct Bench {
    konductor: PathBuf,
    koncli: PathBuf,
    quick: bool,
    clients: Vec<usize>,
    large_only: bool,
    python: Option<PathBuf>,
    report: Report,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("konductor-bench: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("konductor-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (konductor, koncli) = binaries(&args)?;
    let groups = if args.only.is_empty() {
        vec![
            Group::Release,
            Group::Throughput,
            Group::Flatness,
            Group::Footprint,
            Group::Locks,
            Group::Once,
            Group::Waitgroup,
            Group::Gate,
            Group::Ratelimit,
        ]
    } else {
        args.only.clone()
    };
    let mut bench = Bench {
        konductor,
        koncli,
        quick: args.quick,
        clients: args.clients.clone(),
        large_only: args.large_only,
        python: args.python.clone(),
        report: Report::default(),
    };
    bench.report.record(machine());
    let started = std::time::Instant::now();
    for group in groups {
        match group {
            Group::Release => bench.release().await?,
            Group::Throughput => bench.throughput().await?,
            Group::Flatness => bench.flatness().await?,
            Group::Footprint => bench.footprint().await?,
            Group::Once => bench.once().await?,
            Group::Waitgroup => bench.waitgroup().await?,
            Group::Gate => bench.gate().await?,
            Group::Locks => bench.locks().await?,
            Group::Ratelimit => bench.ratelimit().await?,
            Group::Cost => bench.cost().await?,
            Group::Etcd => bench.etcd().await?,
            Group::Dashboard => bench.dashboard().await?,
            Group::Python => bench.python().await?,
        }
    }
    println!();
    print!("{}", bench.report.table());
    println!(
        "\n{} mode, {:.0} s, konductor {}",
        if bench.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        bench.konductor.display()
    );
    Ok(())
}

/// The binaries to run: given, or the release builds of this workspace (built first
/// when run from cargo).
fn binaries(args: &Args) -> anyhow::Result<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe().context("locating this program")?;
    let beside = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let release_dir = match std::env::var_os("CARGO") {
        Some(cargo) if args.konductor.is_none() || args.koncli.is_none() => {
            eprintln!("building konductor and koncli (release)...");
            let status = std::process::Command::new(cargo)
                .args([
                    "build",
                    "--release",
                    "--locked",
                    "--bin",
                    "konductor",
                    "--bin",
                    "koncli",
                ])
                .status()
                .context("running cargo build")?;
            if !status.success() {
                bail!("cargo build --release failed");
            }
            // target/<profile>/konductor-bench → target/release
            beside.parent().map(|t| t.join("release")).unwrap_or(beside)
        }
        _ => beside,
    };
    let pick = |given: &Option<PathBuf>, name: &str| -> anyhow::Result<PathBuf> {
        let path = given.clone().unwrap_or_else(|| release_dir.join(name));
        if !path.is_file() {
            bail!(
                "{} not found: build it with `cargo build --release --bin konductor --bin koncli`, or pass --{name}",
                path.display()
            );
        }
        Ok(path)
    };
    Ok((
        pick(&args.konductor, "konductor")?,
        pick(&args.koncli, "koncli")?,
    ))
}

/// The machine the figures come from.
fn machine() -> Figure {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / (1024.0 * 1024.0));
    Figure::new("machine")
        .value("cores", cores as f64)
        .value("memory_gib", memory_gib.round())
}

impl Bench {
    async fn server(&self) -> anyhow::Result<ServerProcess> {
        ServerProcess::start(&self.konductor).await
    }

    /// Release latency for koncli processes and SDK waiters, beside the Go SDK's pollers.
    async fn release(&mut self) -> anyhow::Result<()> {
        let koncli = Waiter::Koncli(&self.koncli);
        // (waiter, n, rounds, rounds with pollers, target p99 ms)
        let scenarios: [(Waiter, usize, usize, usize, f64); 5] = if self.quick {
            [
                (Waiter::Sdk, 1, 10, 0, f64::NAN),
                (koncli, 1, 10, 1, 3.0),
                (koncli, 10, 3, 1, f64::NAN),
                (koncli, 100, 1, 1, 25.0),
                (Waiter::Sdk, 1000, 1, 1, 50.0),
            ]
        } else {
            [
                (Waiter::Sdk, 1, 50, 0, f64::NAN),
                (koncli, 1, 50, 3, 3.0),
                (koncli, 10, 10, 2, f64::NAN),
                (koncli, 100, 5, 1, 25.0),
                (Waiter::Sdk, 1000, 3, 1, 50.0),
            ]
        };
        let server = self.server().await?;
        for (waiter, n, rounds, poller_rounds, target) in scenarios {
            let kind = waiter.label();
            let latencies = release::measure(&server, waiter, n, rounds, poller_rounds).await?;
            let mut ours = Figure::new(format!("release.{kind}.n{n}"))
                .latencies(&latencies.ours)
                .note(format!("{n} waiters x {rounds} rounds"));
            if target.is_finite() {
                ours = ours.target(Target::AtMost("p99_ms", target));
            }
            if poller_rounds == 0 {
                self.report.record(ours);
                continue;
            }
            let theirs = Figure::new(format!("release.go-sdk-polling.n{n}"))
                .latencies(&latencies.theirs)
                .note(format!("{n} pollers x {poller_rounds} rounds"));
            let (ours_sorted, theirs_sorted) = (sorted(&latencies.ours), sorted(&latencies.theirs));
            let ratio = Figure::new(format!("release.ratio.n{n}"))
                .value(
                    "p50_theirs_over_ours",
                    quantile(&theirs_sorted, 0.5) / quantile(&ours_sorted, 0.5),
                )
                .value(
                    "p99_theirs_over_ours",
                    quantile(&theirs_sorted, 0.99) / quantile(&ours_sorted, 0.99),
                );
            self.report.record(ours);
            self.report.record(theirs);
            self.report.record(ratio);
        }
        Ok(())
    }

    fn record_load(
        &mut self,
        name: &str,
        load: &Load,
        result: &LoadResult,
        target: Option<Target>,
    ) {
        let mut figure = Figure::new(name)
            .value("arrivals_per_s", result.arrivals_per_s)
            .value("time_to_all_open_s", result.time_to_all_open_s)
            .value(
                "open_after_last_arrival_ms",
                result.open_after_last_arrival_ms,
            )
            .value(
                "server_open_after_last_arrival_ms",
                result.server_open_after_last_arrival_ms,
            )
            .value(
                "status_writes_per_arrival",
                result.status_writes_per_arrival,
            )
            .value("store_writes_per_arrival", result.store_writes_per_arrival)
            .value("commits_per_arrival", result.commits_per_arrival)
            .value("peak_rss_mib", result.peak_rss_mib)
            .note(format!(
                "{} barriers x {} arrivals, {} clients",
                load.barriers, load.arrivals, load.clients
            ));
        if let Some(target) = target {
            figure = figure.target(target);
        }
        self.report.record(figure);
    }

    /// Throughput of one large barrier and of many small ones, from 16 and 64 clients.
    async fn throughput(&mut self) -> anyhow::Result<()> {
        let (large, many, default_clients): (usize, usize, &[usize]) = if self.quick {
            (2_000, 1_000, &[16])
        } else {
            (10_000, 10_000, &[16, 64])
        };
        let client_counts = if self.clients.is_empty() {
            default_clients.to_vec()
        } else {
            self.clients.clone()
        };
        for clients in client_counts {
            let (_, result) = self
                .fresh_load(
                    "large",
                    1,
                    large,
                    clients,
                    Target::AtLeast("arrivals_per_s", 1500.0),
                )
                .await?;
            let open_after =
                Figure::new(format!("throughput.1x{large}.c{clients}.open_after_last"))
                    .value("ms", result.open_after_last_arrival_ms)
                    .target(Target::AtMost("ms", 50.0));
            self.report.record(open_after);
            if self.large_only {
                continue;
            }

            let (server, result) = self
                .fresh_load(
                    "many",
                    many,
                    10,
                    clients,
                    Target::AtLeast("arrivals_per_s", 1700.0),
                )
                .await?;
            if clients == 16 {
                let objects = many * 11;
                self.report.record(
                    Figure::new(format!("footprint.peak_rss.{objects}_objects"))
                        .value("mib", result.peak_rss_mib)
                        .target(Target::AtMost("mib", 250.0)),
                );
                // The flatness probe on this server, with `many` barriers stored.
                let probe = self.probe(&server, "probe-many").await?;
                self.report.record(
                    Figure::new(format!("flatness.probe.{many}_stored"))
                        .value("arrivals_per_s", probe.arrivals_per_s),
                );
            }
        }
        Ok(())
    }

    /// Runs `barriers` x `arrivals` from `clients` on a fresh server and records it;
    /// returns the server (still running) and the result.
    async fn fresh_load(
        &mut self,
        prefix: &str,
        barriers: usize,
        arrivals: usize,
        clients: usize,
        target: Target,
    ) -> anyhow::Result<(ServerProcess, LoadResult)> {
        let server = self.server().await?;
        let load = Load {
            prefix: prefix.into(),
            barriers,
            arrivals,
            clients,
        };
        let result = throughput::run(&server, &load).await?;
        self.record_load(
            &format!("throughput.{barriers}x{arrivals}.c{clients}"),
            &load,
            &result,
            Some(target),
        );
        Ok((server, result))
    }

    /// The flatness probe: 100 barriers x 10 arrivals from 16 clients.
    async fn probe(&self, server: &ServerProcess, prefix: &str) -> anyhow::Result<LoadResult> {
        throughput::run(
            server,
            &Load {
                prefix: prefix.into(),
                barriers: 100,
                arrivals: 10,
                clients: 16,
            },
        )
        .await
    }

    /// The probe with 100 barriers stored, against the probe the throughput group ran
    /// with many stored.
    async fn flatness(&mut self) -> anyhow::Result<()> {
        let server = self.server().await?;
        self.probe(&server, "seed").await?;
        let few = self.probe(&server, "probe-few").await?;
        self.report.record(
            Figure::new("flatness.probe.100_stored").value("arrivals_per_s", few.arrivals_per_s),
        );
        let many = self
            .report
            .starting_with("flatness.probe.")
            .find(|f| f.name != "flatness.probe.100_stored")
            .and_then(|f| f.get("arrivals_per_s"));
        if let Some(many) = many {
            self.report.record(
                Figure::new("flatness.ratio")
                    .value("many_over_few", many / few.arrivals_per_s)
                    .target(Target::AtLeast("many_over_few", 0.8)),
            );
        } else {
            eprintln!("flatness: run the throughput group too for the many-stored probe");
        }
        Ok(())
    }

    /// Idle memory, `koncli barrier status` wall time, binary sizes.
    async fn footprint(&mut self) -> anyhow::Result<()> {
        let server = self.server().await?;
        let idle = footprint::idle_rss_mib(&server).await?;
        self.report.record(
            Figure::new("footprint.idle_rss")
                .value("mib", idle)
                .target(Target::AtMost("mib", 30.0)),
        );
        let runs = if self.quick { 20 } else { 100 };
        let times = footprint::koncli_status_ms(&server, &self.koncli, runs).await?;
        self.report
            .record(Figure::new("footprint.koncli_status_wall").latencies(&times));
        self.report.record(
            Figure::new("footprint.binary_size")
                .value("konductor_mib", footprint::size_mib(&self.konductor)?)
                .value("koncli_mib", footprint::size_mib(&self.koncli)?),
        );
        Ok(())
    }

    /// 100 concurrent `koncli once run` processes on a fresh key, until all have exited
    /// (rounds on fresh Onces of one server).
    async fn once(&mut self) -> anyhow::Result<()> {
        let server = self.server().await?;
        let rounds = if self.quick { 3 } else { 10 };
        let mut times = Vec::with_capacity(rounds);
        for round in 0..rounds {
            times.push(
                once::concurrent_run_ms(&server, &self.koncli, &format!("bench-{round}"), 100)
                    .await?,
            );
        }
        self.report.record(
            Figure::new("once.concurrent_runs_until_all_exited")
                .latencies(&times)
                .target(Target::AtMost("p50_ms", 1000.0))
                .note("100 koncli once run processes on a fresh key, no-op command"),
        );
        Ok(())
    }

    /// One WaitGroup of 10,000 members (2,000 with --quick), each added and then done
    /// by separate requests from 16 clients, beside one barrier of as many arrivals
    /// from 16 clients, each on a fresh server: a member is two writes where an arrival
    /// is one, and the target is half the barrier's rate.
    async fn waitgroup(&mut self) -> anyhow::Result<()> {
        let members = if self.quick { 2_000 } else { 10_000 };
        let clients = 16;
        let server = self.server().await?;
        let barrier = throughput::run(
            &server,
            &Load {
                prefix: "wg-reference".into(),
                barriers: 1,
                arrivals: members,
                clients,
            },
        )
        .await?;
        drop(server);
        let server = self.server().await?;
        let result = waitgroup::run(&server, "bench", members, clients).await?;
        self.report.record(
            Figure::new(format!("waitgroup.1x{members}.c{clients}"))
                .value("members_per_s", result.members_per_s)
                .value("time_to_done_s", result.time_to_done_s)
                .value("done_after_last_ms", result.done_after_last_ms)
                .value("status_writes_per_member", result.status_writes_per_member)
                .value("peak_rss_mib", result.peak_rss_mib)
                .note(format!(
                    "1 WaitGroup x {members} members, each added then done, {clients} clients"
                )),
        );
        self.report.record(
            Figure::new(format!("waitgroup.1x{members}.c{clients}.vs_barrier"))
                .value("barrier_arrivals_per_s", barrier.arrivals_per_s)
                .value(
                    "members_over_arrivals",
                    result.members_per_s / barrier.arrivals_per_s,
                )
                .target(Target::AtLeast("members_over_arrivals", 0.5)),
        );
        Ok(())
    }

    /// 1,000 Gates (200 with --quick) each on its own Job, every Job completed from 16
    /// clients, until a watcher has seen every Gate Open; then one Gate on one Job, the
    /// Job's completion until the Gate is seen Open, 300 times (50), each part on a
    /// fresh server.
    /// `koncli dashboard` with a large set, in headless Chromium.
    async fn dashboard(&mut self) -> anyhow::Result<()> {
        let sizes = if self.quick {
            dashboard::Sizes {
                barriers: 100,
                locks: 10,
                waiting: 20,
                members: 1_000,
                samples: 10,
            }
        } else {
            dashboard::Sizes {
                barriers: 1_000,
                locks: 100,
                waiting: 100,
                members: 10_000,
                samples: 50,
            }
        };
        let server = self.server().await?;
        let measured = dashboard::measure(&server, &self.koncli, sizes).await?;
        self.report.record(
            Figure::new("dashboard.first_render")
                .value("cold_ms", measured.first_render_cold_ms)
                .value("warm_ms", measured.first_render_warm_ms)
                .value("dom_elements", measured.dom_elements)
                .value("dom_rows", measured.dom_rows)
                .value("dashboard_rss_mib", measured.dashboard_rss_mib)
                .value("objects", measured.objects as f64)
                .target(Target::AtMost("cold_ms", 3000.0))
                .note(format!(
                    "{} Barriers, {} Mutexes x {} waiting Permits, a WaitGroup of {} members; \
                     cold: koncli dashboard started just before the page is opened",
                    sizes.barriers, sizes.locks, sizes.waiting, sizes.members
                )),
        );
        self.report.record(
            Figure::new("dashboard.arrival_to_dom")
                .latencies(&measured.arrival_to_dom_ms)
                .target(Target::AtMost("p99_ms", 1000.0))
                .note("an arrival acknowledged until the page's DOM shows it (headless Chromium), with the large set stored"),
        );
        drop(server);
        Ok(())
    }

    async fn gate(&mut self) -> anyhow::Result<()> {
        let (count, samples) = if self.quick { (200, 50) } else { (1_000, 300) };
        let clients = 16;
        let server = self.server().await?;
        let many = gate::many(&server, count, clients, gate::Resume::No).await?;
        self.report.record(
            Figure::new(format!("gate.{count}_gates_on_their_jobs.c{clients}"))
                .value("all_open_after_last_job_ms", many.all_open_after_last_ms)
                .value("all_open_after_first_job_ms", many.all_open_after_first_ms)
                .value("status_writes_per_gate", many.status_writes_per_gate)
                .value("peak_rss_mib", many.peak_rss_mib)
                .target(Target::AtMost("all_open_after_last_job_ms", 1000.0))
                .note(format!(
                    "{count} Gates each on its own Job; every Job completed from {clients} clients"
                )),
        );
        drop(server);
        let server = self.server().await?;
        let latency = gate::latency_ms(&server, samples, gate::Resume::No).await?;
        self.report.record(
            Figure::new("gate.job_complete_to_open")
                .latencies(&latency)
                .target(Target::AtMost("p99_ms", 5.0))
                .note("a Job's completion acknowledged until a watcher sees its Gate Open"),
        );
        drop(server);
        let server = self.server().await?;
        let many = gate::many(&server, count, clients, gate::Resume::Yes).await?;
        self.report.record(
            Figure::new(format!("gate.{count}_gates_resuming_their_jobs.c{clients}"))
                .value("all_resumed_after_last_job_ms", many.all_open_after_last_ms)
                .value("all_resumed_after_first_job_ms", many.all_open_after_first_ms)
                .value("status_writes_per_gate", many.status_writes_per_gate)
                .value("peak_rss_mib", many.peak_rss_mib)
                .target(Target::AtMost("all_resumed_after_last_job_ms", 2000.0))
                .note(format!(
                    "{count} Gates each on its own Job and resuming its own suspended Job; every Job completed from {clients} clients"
                )),
        );
        drop(server);
        let server = self.server().await?;
        let latency = gate::latency_ms(&server, samples, gate::Resume::Yes).await?;
        self.report.record(
            Figure::new("gate.job_complete_to_resumed")
                .latencies(&latency)
                .target(Target::AtMost("p99_ms", 5.0))
                .note("a Job's completion acknowledged until a watcher sees the suspended Job its Gate resumes resumed"),
        );
        Ok(())
    }

    /// A RateLimit far below its limit beside a Mutex, five alternating rounds on one
    /// server (medians); then three free locks held at once beside one.
    async fn ratelimit(&mut self) -> anyhow::Result<()> {
        let (holders, rounds, samples) = if self.quick {
            (50, 2, 50)
        } else {
            (100, 4, 300)
        };
        let server = self.server().await?;
        let (mut mutex, mut limited, mut one_at_a_time) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..5 {
            let (m, r, o) = (
                format!("m{round}"),
                format!("r{round}"),
                format!("s{round}"),
            );
            let mutex_round = || locks::handovers_per_s(&server, &m, holders, rounds);
            // Far above demand; or, one at a time, passed around as the Mutex is.
            let limited_round = |one_at_a_time: bool| {
                let (name, max) = if one_at_a_time {
                    (&o, Some(1))
                } else {
                    (&r, None)
                };
                locks::rate_limit_grants_per_s(&server, name, max, holders, rounds)
            };
            // Alternate who goes first.
            if round % 2 == 0 {
                mutex.push(mutex_round().await?.per_s);
                limited.push(limited_round(false).await?.per_s);
                one_at_a_time.push(limited_round(true).await?.per_s);
            } else {
                one_at_a_time.push(limited_round(true).await?.per_s);
                limited.push(limited_round(false).await?.per_s);
                mutex.push(mutex_round().await?.per_s);
            }
        }
        let median = |values: &[f64]| report::quantile(&report::sorted(values), 0.5);
        let (mutex, limited, one_at_a_time) =
            (median(&mutex), median(&limited), median(&one_at_a_time));
        self.report.record(
            Figure::new("ratelimit.grants_vs_mutex_handovers")
                .value("ratelimit_grants_per_s", limited)
                .value("mutex_handovers_per_s", mutex)
                .value("ratio", limited / mutex)
                .value("one_at_a_time_grants_per_s", one_at_a_time)
                .value("one_at_a_time_ratio", one_at_a_time / mutex)
                .value("holders", holders as f64)
                .target(Target::AtLeast("ratio", 0.8))
                .note("medians of 5 alternating rounds on one server; the RateLimit at 10,000 per 1s window, far above demand; one at a time: maxConcurrent 1, passed around as the Mutex is"),
        );
        let server = self.server().await?;
        let one = locks::acquire_ms(&server, samples).await?;
        let three = locks::hold_three_ms(&server, samples).await?;
        let (one, three) = (median(&one), median(&three));
        self.report.record(
            Figure::new("locks.hold_three_free")
                .value("p50_three_ms", three)
                .value("p50_one_ms", one)
                .value("ratio", three / one)
                .note("hold_all of three free Mutexes (taken in order) beside one acquire; about 3x expected"),
        );
        let (one, three) = locks::koncli_runs_ms(
            &server,
            &self.koncli,
            &["mutex", "run", "solo"],
            &[
                "run", "--hold", "mutex/x", "--hold", "mutex/y", "--hold", "mutex/z",
            ],
            samples.min(100),
        )
        .await?;
        let (one, three) = (median(&one), median(&three));
        self.report.record(
            Figure::new("locks.koncli_run_hold_three_free")
                .value("p50_three_ms", three)
                .value("p50_one_ms", one)
                .value("ratio", three / one)
                .note("koncli run --hold of three free Mutexes beside koncli mutex run of one, process start to exit, alternating"),
        );
        Ok(())
    }

    /// What clients cost the server at steady state: requests and watch events per
    /// second for barrier waiters, Go-SDK pollers, lock waiters and Semaphore holders,
    /// each on a fresh server.
    async fn cost(&mut self) -> anyhow::Result<()> {
        let (n, window) = if self.quick {
            (100, std::time::Duration::from_secs(10))
        } else {
            // Three renewal periods at the default ttl (5m / 6 = 50 s) and five of the
            // 30 s periods (watches re-opened, a waiter's reads of its lock): every
            // periodic cost is counted a whole number of times, however the clients'
            // starts line up.
            (1_000, std::time::Duration::from_secs(150))
        };
        for clients in [
            cost::Clients::BarrierWaiters,
            cost::Clients::Pollers,
            cost::Clients::LockWaiters,
            cost::Clients::Holders,
        ] {
            let server = self.server().await?;
            let rates = cost::measure(&server, clients, n, window).await?;
            self.report.record(
                Figure::new(format!("cost.{}.n{n}", clients.name()))
                    .value("requests_per_s", rates.requests_per_s)
                    .value("watch_events_per_s", rates.events_per_s)
                    .note(format!(
                        "steady state over {} s, default ttl",
                        window.as_secs()
                    )),
            );
        }
        Ok(())
    }

    /// Runs per second of N concurrent `koncli mutex run m -- true` and of N concurrent
    /// `etcdctl lock m -- true`, rounds alternating (which goes first alternates too),
    /// medians of five; the ratio ours/etcd per N, and ours at 100 over ours at 10.
    async fn etcd(&mut self) -> anyhow::Result<()> {
        let (etcd_bin, etcdctl) = (etcd::on_path("etcd")?, etcd::on_path("etcdctl")?);
        let rounds = if self.quick { 3 } else { 5 };
        let mut ours_at = std::collections::BTreeMap::new();
        for (n, target) in [(10, 1.2), (30, 1.0), (100, 1.0)] {
            let server = self.server().await?;
            let store = etcd::Etcd::start(&etcd_bin, &etcdctl).await?;
            let created = tokio::process::Command::new(&self.koncli)
                .arg("--kubeconfig")
                .arg(&server.kubeconfig)
                .args(["mutex", "create", "m"])
                .output()
                .await?;
            if !created.status.success() {
                bail!("koncli mutex create m failed");
            }
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                if round % 2 == 0 {
                    ours.push(etcd::koncli_round(&self.koncli, &server, n).await?);
                    theirs.push(etcd::etcd_round(&etcdctl, &store, n).await?);
                } else {
                    theirs.push(etcd::etcd_round(&etcdctl, &store, n).await?);
                    ours.push(etcd::koncli_round(&self.koncli, &server, n).await?);
                }
            }
            let (ours, theirs) = (sorted(&ours), sorted(&theirs));
            let (ours_median, theirs_median) = (quantile(&ours, 0.5), quantile(&theirs, 0.5));
            ours_at.insert(n, ours_median);
            let note = |runs: &[f64]| {
                format!(
                    "{n} concurrent runs, {rounds} rounds: {}",
                    runs.iter()
                        .map(|r| format!("{r:.1}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            };
            self.report.record(
                Figure::new(format!("etcd.koncli_mutex_run.n{n}"))
                    .value("runs_per_s", ours_median)
                    .note(note(&ours)),
            );
            self.report.record(
                Figure::new(format!("etcd.etcdctl_lock.n{n}"))
                    .value("runs_per_s", theirs_median)
                    .note(note(&theirs)),
            );
            self.report.record(
                Figure::new(format!("etcd.ratio.n{n}"))
                    .value("ours_over_etcd", ours_median / theirs_median)
                    .target(Target::AtLeast("ours_over_etcd", target)),
            );
        }
        if let (Some(at_10), Some(at_100)) = (ours_at.get(&10), ours_at.get(&100)) {
            self.report.record(
                Figure::new("etcd.koncli_n100_over_n10")
                    .value("ratio", at_100 / at_10)
                    .target(Target::AtLeast("ratio", 0.8)),
            );
        }
        Ok(())
    }

    /// The Python SDK beside the Rust SDK and `koncli`, in alternating rounds, each on a
    /// fresh server: a free Mutex acquired; a Mutex handed over between two processes
    /// (Python: two `bench.py holder` processes; koncli: `mutex run` processes; the Rust
    /// SDK: two holders in this process); 100 waiters released by one arrival. Then the
    /// watch events a handover costs with 10 and 50 Python processes queued.
    async fn python(&mut self) -> anyhow::Result<()> {
        let worker = python::PythonWorker::locate(self.python.clone()).await?;
        let (rounds, samples, waiters) = if self.quick {
            (1, 50, 100)
        } else {
            (5, 60, 100)
        };
        let koncli_run = ["mutex", "run", "koncli-acquire"];
        // Each figure by who: [Python, koncli, the Rust SDK].
        let who = ["python", "koncli", "sdk"];
        let [mut acquire, mut handover, mut release] = <[[Vec<f64>; 3]; 3]>::default();
        let mut release_one = Vec::new();
        for _ in 0..rounds {
            let server = self.server().await?;
            acquire[0].extend(worker.acquire_ms(&server, samples).await?);
            let (a, b) =
                locks::koncli_runs_ms(&server, &self.koncli, &koncli_run, &koncli_run, samples / 2)
                    .await?;
            acquire[1].extend(a.into_iter().chain(b));
            acquire[2].extend(locks::acquire_ms(&server, samples).await?);
            let contenders = [
                python::Contender::Python(&worker),
                python::Contender::Koncli(&self.koncli),
            ];
            for (i, contender) in contenders.iter().enumerate() {
                let name = format!("handover-{i}");
                handover[i].extend(contender.handover_ms(&server, &name, samples).await?);
            }
            handover[2].extend(locks::handover_ms(&server, samples).await?);
            let kinds = [
                Waiter::Python(&worker),
                Waiter::Koncli(&self.koncli),
                Waiter::Sdk,
            ];
            for (i, waiter) in kinds.into_iter().enumerate() {
                release[i].extend(release::measure(&server, waiter, waiters, 1, 0).await?.ours);
            }
            let one = release::measure(&server, Waiter::Python(&worker), 1, 10, 0).await?;
            release_one.extend(one.ours);
        }
        let acquire_notes = [
            "free Mutex, Mutex.acquire() in one Python process until the grant is seen",
            "`koncli mutex run NAME -- true`, process start to exit (acquire and release included)",
            "free Mutex, the Rust SDK's acquire until the grant is seen",
        ];
        let handover_notes = [
            "two Python processes: the holder asked to release until the queued one says it holds",
            "two `koncli mutex run` processes: the holder's command asked to end until the queued one's command starts",
            "two holders in one Rust process: release starts until the queued one holds",
        ];
        let waiter_notes = ["Python processes", "koncli processes", "Rust SDK futures"];
        for i in 0..3 {
            let mut acquired = Figure::new(format!("python.acquire.{}", who[i]))
                .latencies(&acquire[i])
                .note(acquire_notes[i]);
            let mut handed = Figure::new(format!("python.handover.{}", who[i]))
                .latencies(&handover[i])
                .note(handover_notes[i]);
            if i == 0 {
                acquired = acquired.target(Target::AtMost("p99_ms", 10.0));
                handed = handed.target(Target::AtMost("p99_ms", 10.0));
            }
            self.report.record(acquired);
            self.report.record(handed);
        }
        for i in 0..3 {
            self.report.record(
                Figure::new(format!("python.release.{}.n{waiters}", who[i]))
                    .latencies(&release[i])
                    .note(format!(
                        "{waiters} waiters ({}) released by one arrival, {rounds} rounds",
                        waiter_notes[i]
                    )),
            );
        }
        self.report.record(
            Figure::new("python.release.python.n1")
                .latencies(&release_one)
                .note("one Python process released by an arrival: the floor"),
        );
        for relays in [10, 50] {
            let server = self.server().await?;
            if let Some(events) = python::events_per_handover(&worker, &server, relays, 100).await?
            {
                self.report.record(
                    Figure::new(format!("python.watch_events_per_handover.n{relays}"))
                        .value("events", events)
                        .value("waiters", relays as f64)
                        .note("Python processes taking turns on one Mutex, the queue kept full"),
                );
            }
        }
        Ok(())
    }

    /// Lock grant latency, handover latency, handovers per second, and the watch events
    /// a handover sends with 10, 100 and 1,000 waiting clients, each on a fresh server.
    async fn locks(&mut self) -> anyhow::Result<()> {
        let samples = if self.quick { 50 } else { 300 };
        let server = self.server().await?;
        let acquire = locks::acquire_ms(&server, samples).await?;
        self.report.record(
            Figure::new("locks.acquire_to_grant")
                .latencies(&acquire)
                .target(Target::AtMost("p99_ms", 3.0))
                .note("free Mutex, SDK acquire until the grant is seen"),
        );
        let server = self.server().await?;
        let handover = locks::handover_ms(&server, samples).await?;
        self.report.record(
            Figure::new("locks.release_to_next_grant")
                .latencies(&handover)
                .target(Target::AtMost("p99_ms", 3.0))
                .note("release starts until the queued holder holds it"),
        );
        let server = self.server().await?;
        let (holders, rounds) = if self.quick { (100, 2) } else { (100, 10) };
        let relay = locks::handovers_per_s(&server, "relay", holders, rounds).await?;
        self.report.record(
            Figure::new("locks.mutex_handovers")
                .value("per_s", relay.per_s)
                .value("holders", holders as f64)
                .value("writes_per_handover", relay.writes)
                .value("commits_per_handover", relay.commits)
                .target(Target::AtLeast("per_s", 400.0)),
        );
        let fan_out: &[(usize, usize)] = if self.quick {
            &[(10, 20), (100, 10)]
        } else {
            &[(10, 100), (100, 100), (1000, 100)]
        };
        for &(waiters, handovers) in fan_out {
            let server = self.server().await?;
            if let Some(fan_out) = locks::events_per_handover(&server, waiters, handovers).await? {
                self.report.record(
                    Figure::new(format!("locks.watch_events_per_handover.n{waiters}"))
                        .value("events", fan_out.events)
                        .value("writes", fan_out.writes)
                        .value("events_per_write", fan_out.events / fan_out.writes)
                        .value("handovers_per_s", fan_out.per_s)
                        .value("waiters", waiters as f64)
                        .note("watch events the server sent per handover, every waiter a client with its own watches"),
                );
            }
        }
        Ok(())
    }
}
