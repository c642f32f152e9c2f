//! prun's -o/-e files: byte-exact for binary output and bounded memory for
//! large output.

mod support;

use support::{run, TestFleet};

use std::io::Read;
use std::path::Path;

/// Compares two files chunk by chunk.
fn same_contents(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut chunk_a, mut chunk_b) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let read = a.read(&mut chunk_a).unwrap();
        if b.read_exact(&mut chunk_b[..read]).is_err() || chunk_a[..read] != chunk_b[..read] {
            return false;
        }
        if read == 0 {
            return b.read(&mut chunk_b).unwrap() == 0;
        }
    }
}

#[test]
fn output_files_are_byte_exact_for_binary_data() {
    let fleet = TestFleet::start(3);
    let blob = fleet.dir().join("blob");
    support::random_file(&blob, 1 << 20);
    let (out, err) = (fleet.dir().join("out"), fleet.dir().join("err"));
    let mut prun = fleet.prun_all();
    prun.arg("-o").arg(&out).arg("-e").arg(&err);
    prun.arg(format!("cat {0}; cat {0} >&2", blob.display()));
    run(prun).expect_code(0);
    for index in 0..3 {
        assert!(
            same_contents(&out.join(fleet.host(index)), &blob),
            "stdout of host {index} differs"
        );
        assert!(
            same_contents(&err.join(fleet.host(index)), &blob),
            "stderr of host {index} differs"
        );
    }
    // One directory for both would hold one file per host, each stream
    // over the other: refused, however it is spelled.
    let mut both = fleet.prun_all();
    both.arg("-o")
        .arg(&out)
        .arg("-e")
        .arg(out.join("../out"))
        .arg("true");
    let refused = run(both);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("-o and -e name one directory"),
        "{}",
        refused.stderr
    );
}

#[test]
fn fifty_megabytes_from_one_host_stream_to_disk_in_little_memory() {
    let fleet = TestFleet::start(1);
    let size = 50_000_000;
    let big = fleet.dir().join("big");
    support::random_file(&big, size);
    let out = fleet.dir().join("out");
    let mut prun = fleet.prun_all();
    prun.arg("-o")
        .arg(&out)
        .arg(format!("cat {}", big.display()));
    let result = run(prun);
    result.expect_code(0);
    assert!(
        same_contents(&out.join(fleet.host(0)), &big),
        "50 MB output differs"
    );
    // The whole output is 50 MB; holding it would show here.
    assert!(
        result.max_rss_kib < 25 * 1024,
        "peak RSS {} KiB",
        result.max_rss_kib
    );
    eprintln!(
        "prun peak RSS for 50 MB of output: {} KiB",
        result.max_rss_kib
    );
}
