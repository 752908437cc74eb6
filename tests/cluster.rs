//! scripts/cluster.sh against the built binary: three instances behind
//! twemproxy (deploy/nutcracker.yml's pool), keys spread evenly, one instance
//! stopped and ejected while the proxy keeps serving. Runs whenever
//! `nutcracker` is installed (`.ci/run` installs it).

use std::process::Command;

#[test]
fn three_instances_behind_twemproxy() {
    let installed = Command::new("nutcracker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("nutcracker is not installed (apt-get install -y nutcracker): not run");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh");
    let out = Command::new("timeout")
        .args([
            "240",
            "bash",
            script,
            "--bin",
            env!("CARGO_BIN_EXE_reactor-rpc"),
        ])
        .output()
        .expect("run scripts/cluster.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("cluster: ok"),
        "scripts/cluster.sh: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}
