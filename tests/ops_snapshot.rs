//! The snapshot writer under SIGKILL, and its speed at a million keys.
//!
//! `kill_9_during_save_never_corrupts` re-executes this test binary as a
//! child that saves big snapshots in a loop (the test named
//! `snapshot_writer_child`, which does nothing unless its marker variable is
//! set), kills it at random moments, and checks after every kill that the
//! snapshot still loads, whole, as one of the generations written.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reactor_rpc::ops::snapshot::{load_snapshot, temporaries, write_snapshot, Record};

/// Set in the child: the snapshot path to write to.
const CHILD_PATH_VAR: &str = "REACTOR_RPC_OPS_SNAPSHOT_CHILD";
const CHILD_READY: &str = "snapshot-writer: started";
const CHILD_SAVED: &str = "snapshot-writer: saved";
const RECORDS: u64 = 60_000;
const SHARDS: u64 = 16;
const KILLS: usize = 20;

/// Generation `g` of the test data: every value names its generation.
fn generation(g: u64) -> impl Iterator<Item = Vec<Record>> {
    (0..SHARDS).map(move |s| {
        (s..RECORDS)
            .step_by(SHARDS as usize)
            .map(|i| {
                let key = format!("key:{i:08}");
                let value = format!("{{\"gen\":{g},\"i\":{i},\"pad\":\"{:0>24}\"}}", g * i);
                Record::json(key, value, None)
            })
            .collect()
    })
}

/// Checks that `path` holds exactly one whole generation; returns it.
fn check_whole(path: &Path) -> u64 {
    let loaded = load_snapshot(path, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.records.len() as u64, RECORDS);
    let first = String::from_utf8(loaded.records[0].value.clone()).expect("utf8");
    let g: u64 = first
        .strip_prefix("{\"gen\":")
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("generation");
    let mut expected: Vec<Record> = generation(g).flatten().collect();
    let mut got = loaded.records;
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    got.sort_by(|a, b| a.key.cmp(&b.key));
    assert!(got == expected, "generation {g} is not whole");
    g
}

/// The child: saves generation 1, 2, 3… until killed (or for at most 60 s,
/// so an orphan cannot run forever).
#[test]
fn snapshot_writer_child() {
    let Some(path) = std::env::var_os(CHILD_PATH_VAR) else {
        return;
    };
    let path = PathBuf::from(path);
    println!("{CHILD_READY}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut g = 1;
    while Instant::now() < deadline {
        write_snapshot(&path, generation(g)).expect("save");
        println!("{CHILD_SAVED} {g}");
        g += 1;
    }
}

/// Kills the child if the test fails half-way.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// xorshift64*, seeded from the clock: the kill moments need not be
/// reproducible, only spread (the seed is printed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn kill_9_during_save_never_corrupts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cache.snap");
    let save = write_snapshot(&path, generation(0)).expect("first save");
    // Kill moments are spread over about one save (0–50 ms in a release
    // build, more in a debug one), after a random number of whole saves, so
    // that kills land before, during and after the rename.
    let window_us = (save.ms.max(1) * 1_300).clamp(1_000, 500_000);
    let exe = std::env::current_exe().expect("test binary");
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = (clock ^ u64::from(std::process::id())) | 1;
    println!("seed {seed}, save {} ms, window {window_us} µs", save.ms);
    let mut rng = Rng(seed);
    let mut on_disk = 0;
    let mut mid_save = 0;
    let mut seen = Vec::new();
    for _ in 0..KILLS {
        let child = Command::new(&exe)
            .args([
                "--exact",
                crate::support::test_name(module_path!(), "snapshot_writer_child").as_str(),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_PATH_VAR, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer");
        let mut child = Reaper(child);
        let stdout = child.0.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Wait for the child to start, then for 0–2 completed saves (events,
        // not sleeps); the last one reported is on disk from then on.
        let wait_for = rng.next() % 3;
        let mut started = false;
        let mut saves = 0;
        let count = |line: &str, started: &mut bool, saves: &mut u64| {
            if line.contains(CHILD_READY) {
                *started = true;
            } else if line.contains(CHILD_SAVED) {
                *saves += 1;
            }
        };
        while !started || saves < wait_for {
            match lines.next() {
                Some(Ok(line)) => count(&line, &mut started, &mut saves),
                other => panic!("writer exited early: {other:?}"),
            }
        }
        std::thread::sleep(Duration::from_micros(rng.next() % window_us));
        child.0.kill().expect("SIGKILL");
        let status = child.0.wait().expect("wait");
        assert!(!status.success());
        // Saves the child reported while the parent slept.
        for line in lines.map_while(Result::ok) {
            count(&line, &mut started, &mut saves);
        }
        if !temporaries(&path).expect("list").is_empty() {
            mid_save += 1;
        }
        // Whole, and either the last save reported (a child counts 1, 2, 3…)
        // or the one after it (under way at the kill, or renamed but not yet
        // reported).
        if saves > 0 {
            on_disk = saves;
        }
        let g = check_whole(&path);
        assert!(
            g == on_disk || g == saves + 1,
            "generation {g} on disk; expected {on_disk} or {}",
            saves + 1
        );
        on_disk = g;
        seen.push(g);
    }
    println!(
        "killed {KILLS} times, {mid_save} leaving a temporary file behind; generations on disk {seen:?}"
    );
}

/// Save and load times for 1,000,000 small records. Run with
/// `cargo test --release --test tests ops_snapshot:: -- --ignored --nocapture million`.
#[test]
#[ignore = "timing; run in release"]
fn million_records_save_and_load_times() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cache.snap");
    let shards: Vec<Vec<Record>> = (0..16u64)
        .map(|s| {
            (s..1_000_000)
                .step_by(16)
                .map(|i| match i % 3 {
                    0 => Record::int(format!("counter:{i}"), i as i64, None),
                    1 => Record::json(format!("user:{i}"), format!("{{\"n\":{i}}}"), None),
                    _ => Record::json(format!("s:{i}"), "\"value\"", Some(u64::MAX)),
                })
                .collect()
        })
        .collect();
    let mut saves = Vec::new();
    let mut loads = Vec::new();
    for _ in 0..5 {
        // Cloned before the clock starts: the save alone is timed.
        let copy = shards.clone();
        let info = write_snapshot(&path, copy).expect("save");
        let t = Instant::now();
        let loaded = load_snapshot(&path, 0).expect("load");
        let load_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(loaded.records.len(), 1_000_000);
        println!(
            "save {} ms ({} bytes), load {load_ms:.0} ms",
            info.ms, info.bytes
        );
        saves.push(info.ms as f64);
        loads.push(load_ms);
    }
    saves.sort_by(f64::total_cmp);
    loads.sort_by(f64::total_cmp);
    println!("median of 5: save {} ms, load {:.0} ms", saves[2], loads[2]);
}
