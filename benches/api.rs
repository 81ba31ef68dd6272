//! The API benchmark: enrolment rate, read and PATCH latencies, and
//! provisioning waves, against the real `ferric` binary (or any
//! Ironic-compatible endpoint).
//!
//! `cargo bench --bench api` starts the release binary on a fresh data
//! directory. `cargo bench --bench api -- --url http://host:port --pid PID`
//! measures another server instead (Ironic, for a comparison); `--sizes
//! 1000,10000` sets the node counts and `--waves N` the wave size;
//! `--resources N` instead creates N of each newer resource (deploy
//! templates, runbooks, volume connectors and targets, inspection rules)
//! and measures their list and show latencies.
//! Bounded: at most the given node counts, 8 client threads, and every
//! wait gives up after two minutes.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

const THREADS: usize = 8;
const WAIT_LIMIT: Duration = Duration::from_secs(120);

struct Target {
    url: String,
    pid: Option<u32>,
    _child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = self._child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_ferric() -> Target {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("ferric.toml");
    std::fs::write(&config, "log = \"warn\"\n").expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferric"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ferric");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("listen line");
    let url = line
        .trim()
        .trim_start_matches("ferric listening on ")
        .to_owned();
    Target {
        url,
        pid: Some(child.id()),
        _child: Some(child),
        _dir: Some(dir),
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(THREADS)
        .build()
        .expect("client")
}

fn call(c: &Client, method: Method, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut req = c
        .request(method, url)
        .header("X-OpenStack-Ironic-API-Version", "1.115");
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A request whose answer is read but not parsed: what a latency sample
/// measures is the server, not the client's JSON parser.
fn call_raw(c: &Client, method: Method, url: &str, body: Option<&Value>) -> u16 {
    let mut req = c
        .request(method, url)
        .header("X-OpenStack-Ironic-API-Version", "1.115");
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let _ = resp.bytes();
    status
}

/// Runs `job(i)` for i in 0..n on THREADS threads; returns the wall time.
fn parallel(n: usize, job: impl Fn(&Client, usize) + Send + Sync + 'static) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let started = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (next, job) = (next.clone(), job.clone());
            std::thread::spawn(move || {
                let c = client();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    job(&c, i);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker");
    }
    started.elapsed()
}

fn median_ms(
    c: &Client,
    url: &str,
    method: Method,
    body: Option<&Value>,
    runs: usize,
) -> (f64, f64) {
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let status = call_raw(c, method.clone(), url, body);
            assert!(status < 300, "{method} {url}: {status}");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[runs / 2], samples[runs * 9 / 10])
}

fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Distinguishes this run's names and MACs from earlier runs' on the same
/// server.
fn run_id() -> u32 {
    std::process::id()
}

/// Enrolls nodes `from..to`, each with a port; returns their UUIDs and the
/// node and port creation rates.
fn enrol(url: &str, from: usize, to: usize) -> (Vec<String>, f64, f64) {
    let n = to - from;
    let uuids = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let (u, base) = (uuids.clone(), url.to_owned());
    let node_time = parallel(n, move |c, i| {
        let body =
            json!({"driver": "fake-hardware", "name": format!("bench-{}-{}", run_id(), from + i)});
        let (status, node) = call(c, Method::POST, &format!("{base}/v1/nodes"), Some(&body));
        assert_eq!(status, 201, "create node: {node}");
        u.lock().expect("lock")[i] = node["uuid"].as_str().unwrap_or_default().to_owned();
    });
    let list = uuids.lock().expect("lock").clone();
    let (ports, base) = (Arc::new(list.clone()), url.to_owned());
    let port_time = parallel(n, move |c, i| {
        let k = from + i;
        let mac = format!(
            "52:54:{:02x}:{:02x}:{:02x}:{:02x}",
            (k >> 24) & 0xff,
            (k >> 16) & 0xff,
            (k >> 8) & 0xff,
            k & 0xff
        );
        let body = json!({"address": mac, "node_uuid": ports[i]});
        let (status, out) = call(c, Method::POST, &format!("{base}/v1/ports"), Some(&body));
        assert_eq!(status, 201, "create port: {out}");
    });
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    (list, rate(node_time), rate(port_time))
}

/// Sends `target` to every node at once and waits until all reach `land`.
fn wave(url: &str, nodes: &[String], target: &str, land: &str) -> Duration {
    let started = Instant::now();
    let (list, base, t) = (Arc::new(nodes.to_vec()), url.to_owned(), target.to_owned());
    parallel(nodes.len(), move |c, i| {
        let body = json!({"target": t});
        let (status, out) = call(
            c,
            Method::PUT,
            &format!("{base}/v1/nodes/{}/states/provision", list[i]),
            Some(&body),
        );
        assert_eq!(status, 202, "{t}: {out}");
    });
    let c = client();
    loop {
        let url = format!(
            "{url}/v1/nodes?provision_state={}&fields=uuid,reservation&limit=1000",
            land.replace(' ', "%20")
        );
        let (_, page) = call(&c, Method::GET, &url, None);
        let done = page["nodes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|n| {
                        nodes.iter().any(|u| n["uuid"] == **u) && n["reservation"].is_null()
                    })
                    .count()
            })
            .unwrap_or(0);
        if done == nodes.len() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < WAIT_LIMIT,
            "{target} wave stuck: {done}/{} in {land}",
            nodes.len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn report_size(url: &str, pid: Option<u32>, size: usize, created: &mut Vec<String>, waves: usize) {
    let from = created.len();
    let (mut new, node_rate, port_rate) = enrol(url, from, size);
    created.append(&mut new);
    let c = client();
    let sample = created[created.len() / 2].clone();
    let (list_p50, list_p90) = median_ms(
        &c,
        &format!("{url}/v1/nodes?limit=1000"),
        Method::GET,
        None,
        30,
    );
    let (detail_p50, detail_p90) = median_ms(
        &c,
        &format!("{url}/v1/nodes/detail?limit=1000"),
        Method::GET,
        None,
        30,
    );
    let (get_p50, get_p90) = median_ms(
        &c,
        &format!("{url}/v1/nodes/{sample}"),
        Method::GET,
        None,
        500,
    );
    let patch = json!([{"op": "add", "path": "/extra/bench", "value": "x"}]);
    let (patch_p50, patch_p90) = median_ms(
        &c,
        &format!("{url}/v1/nodes/{sample}"),
        Method::PATCH,
        Some(&patch),
        300,
    );
    println!("\n## {size} nodes, a port each");
    println!("| measure | result |\n|---|---|");
    println!("| node creates/s (8 clients) | {node_rate:.0} |");
    println!("| port creates/s (8 clients) | {port_rate:.0} |");
    println!("| GET /v1/nodes?limit=1000, median (p90) | {list_p50:.1} ms ({list_p90:.1}) |");
    println!(
        "| GET /v1/nodes/detail?limit=1000, median (p90) | {detail_p50:.1} ms ({detail_p90:.1}) |"
    );
    println!("| GET /v1/nodes/{{uuid}}, median (p90) | {get_p50:.2} ms ({get_p90:.2}) |");
    println!("| PATCH /v1/nodes/{{uuid}}, median (p90) | {patch_p50:.2} ms ({patch_p90:.2}) |");
    let wave_nodes: Vec<String> = created[from..].iter().take(waves).cloned().collect();
    for (target, land) in [
        ("manage", "manageable"),
        ("provide", "available"),
        ("active", "active"),
        ("deleted", "available"),
    ] {
        let t = wave(url, &wave_nodes, target, land);
        println!(
            "| {} nodes {target} → {land} | {:.0} ms |",
            wave_nodes.len(),
            t.as_secs_f64() * 1000.0
        );
    }
    if let Some(rss) = peak_rss_mib(pid) {
        println!("| peak RSS of the server so far | {rss:.1} MiB |");
    }
}

/// One kind of resource the resource benchmark creates and reads.
struct Kind {
    name: &'static str,
    collection: &'static str,
    body: fn(usize, &str) -> Value,
}

fn resource_kinds() -> Vec<Kind> {
    vec![
        Kind {
            name: "deploy templates",
            collection: "deploy_templates",
            body: |i, _| {
                json!({"name": format!("CUSTOM_BENCH_{}_{i}", run_id()),
                       "steps": [{"interface": "bios", "step": "apply_configuration",
                                  "args": {"settings": [{"name": "LogicalProc", "value": "Enabled"}]},
                                  "priority": 150}]})
            },
        },
        Kind {
            name: "runbooks",
            collection: "runbooks",
            body: |i, _| {
                json!({"name": format!("CUSTOM_BENCH_{}_{i}", run_id()),
                       "steps": [{"interface": "bios", "step": "apply_configuration",
                                  "args": {"settings": []}, "order": 1}]})
            },
        },
        Kind {
            name: "volume connectors",
            collection: "volume/connectors",
            body: |i, node| {
                json!({"node_uuid": node, "type": "iqn",
                       "connector_id": format!("iqn.2026-12.org.ferric:bench-{}-{i}", run_id())})
            },
        },
        Kind {
            name: "volume targets",
            collection: "volume/targets",
            body: |i, node| {
                json!({"node_uuid": node, "volume_type": "iscsi", "boot_index": i,
                       "volume_id": format!("bench-{}-{i}", run_id()),
                       "properties": {"target_iqn": "iqn.2026-12.org.ferric:target"}})
            },
        },
        Kind {
            name: "inspection rules",
            collection: "inspection_rules",
            body: |i, _| {
                json!({"description": format!("bench {i}"), "priority": i % 100,
                       "conditions": [{"op": "eq", "args": ["{inventory.cpu.architecture}", "x86_64"]}],
                       "actions": [{"op": "add-trait", "args": ["CUSTOM_BENCH"]}]})
            },
        },
    ]
}

/// Creates `count` of each newer resource (the volume ones on one node) and
/// measures their list and show latencies.
fn report_resources(url: &str, pid: Option<u32>, count: usize) {
    let c = client();
    let (status, node) = call(
        &c,
        Method::POST,
        &format!("{url}/v1/nodes"),
        Some(&json!({"driver": "fake-hardware", "name": format!("bench-{}-volumes", run_id())})),
    );
    assert_eq!(status, 201, "create node: {node}");
    let node = node["uuid"].as_str().unwrap_or_default().to_owned();
    println!("\n## {count} of each newer resource");
    println!("| resource | creates/s (8 clients) | GET list?limit=1000, median (p90) | GET one, median (p90) |");
    println!("|---|---|---|---|");
    for kind in resource_kinds() {
        let uuids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
        let (u, base, node, make) = (uuids.clone(), url.to_owned(), node.clone(), kind.body);
        let collection = kind.collection;
        let took = parallel(count, move |c, i| {
            let body = make(i, &node);
            let (status, out) = call(
                c,
                Method::POST,
                &format!("{base}/v1/{collection}"),
                Some(&body),
            );
            assert_eq!(status, 201, "create {collection}: {out}");
            u.lock()
                .expect("lock")
                .push(out["uuid"].as_str().unwrap_or_default().to_owned());
        });
        let sample = uuids.lock().expect("lock")[count / 2].clone();
        let list = format!("{url}/v1/{}?limit=1000", kind.collection);
        let (list_p50, list_p90) = median_ms(&c, &list, Method::GET, None, 30);
        let one = format!("{url}/v1/{}/{sample}", kind.collection);
        let (get_p50, get_p90) = median_ms(&c, &one, Method::GET, None, 500);
        let rate = count as f64 / took.as_secs_f64();
        println!(
            "| {} | {rate:.0} | {list_p50:.1} ms ({list_p90:.1}) | {get_p50:.2} ms ({get_p90:.2}) |",
            kind.name
        );
    }
    if let Some(rss) = peak_rss_mib(pid) {
        println!("| peak RSS of the server so far | {rss:.1} MiB | | |");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<usize> = opt("--sizes")
        .unwrap_or_else(|| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let waves: usize = opt("--waves").and_then(|w| w.parse().ok()).unwrap_or(200);
    let target = match opt("--url") {
        Some(url) => Target {
            url,
            pid: opt("--pid").and_then(|p| p.parse().ok()),
            _child: None,
            _dir: None,
        },
        None => start_ferric(),
    };
    println!("# API benchmark against {}", target.url);
    if let Some(count) = opt("--resources").and_then(|n| n.parse().ok()) {
        report_resources(&target.url, target.pid, count);
        return;
    }
    let mut created = Vec::new();
    for size in sizes {
        report_size(&target.url, target.pid, size, &mut created, waves);
    }
}
