//! `synprof paired`: synprof against onnxruntime (from the tests' venv) in alternating
//! bursts, the peer kept loaded in its runner and bursting only when asked.
//!
//! One test function: it sets `SYNPROF_PYTHON` for this binary.

mod common;
use common::python::{bare_python, python_with, set_python};
use std::time::Instant;
use synprof::exec::external::Peer;
use synprof::exec::paired::{run_paired_with_peer, PairedOptions};
use synprof::exec::run::{RunOptions, Window};
use synprof::exec::Backend;

#[test]
fn the_peer_bursts_on_request_and_pairs_alternate() {
    let net = synprof::zoo::build("keras_cifar10_cnn", None).unwrap();
    set_python(&python_with(&["onnxruntime", "numpy"]));
    let opts = RunOptions {
        backend: Backend::Onnxruntime,
        batch: 2,
        warmup: Window { iterations: 1, seconds: 0.0 },
        ..RunOptions::default()
    };

    // A burst runs when asked, for at least the time asked: a runner that timed its
    // iterations ahead, or ignored the length, answers sooner than this.
    let mut peer = Peer::start(&net, &opts).unwrap();
    assert!(peer.runtime().starts_with("onnxruntime 1."), "{}", peer.runtime());
    for seconds in [0.3, 0.0, 0.3] {
        let t0 = Instant::now();
        let images_per_s = peer.burst(seconds).unwrap();
        let took = t0.elapsed().as_secs_f64();
        assert!(took >= seconds && took < seconds + 2.0, "a {seconds} s burst took {took} s");
        // Its images/s counts whole iterations of 2 images inside that time.
        assert!(images_per_s.is_finite() && images_per_s >= 2.0 / took, "{images_per_s} images/s in {took} s");
    }
    drop(peer);

    let o = PairedOptions {
        batch: 2,
        threads: Some(1),
        bursts: 4,
        burst_seconds: 0.05,
        warmup_seconds: 0.0,
        ..Default::default()
    };
    let r = run_paired_with_peer(&net, Backend::Onnxruntime, &o).unwrap();
    assert!(r.a.starts_with("onnxruntime 1.") && r.b.starts_with("synprof"), "{} / {}", r.a, r.b);
    assert_eq!((r.a_images_per_s.len(), r.b_images_per_s.len()), (4, 4));
    assert!(r.a_images_per_s.iter().chain(&r.b_images_per_s).all(|v| v.is_finite() && *v > 0.0));
    let [q1, median, q3] = r.ratio_quartiles().unwrap();
    assert!(q1 <= median && median <= q3 && median > 0.0);

    // A Python without onnxruntime: the peer says what to install, before any burst.
    let bare = bare_python("paired");
    set_python(&bare);
    let e = run_paired_with_peer(&net, Backend::Onnxruntime, &o).unwrap_err().to_string();
    assert!(e.contains("onnxruntime backend") && e.contains("pip install onnxruntime numpy"), "{e}");
    std::fs::remove_dir_all(bare.parent().unwrap()).ok();
}
