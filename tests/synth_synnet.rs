//! The synNet-style sampler (`synnet:...`): budgets always met by valid nets, sampled
//! kernel sizes and widths that follow the configured distributions (so a wrong sampler
//! fails), determinism, and errors that name the key.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use synprof::analysis::analyze;
use synprof::graph::{format, Net, Op};
use synprof::source;
use synprof::synth::synnet::Params;
use synprof::Dtype;

const MIX: &str = "plain:0.5,bottleneck:0.1,inception:0.1,dense:0.1,separable:0.1,inverted:0.1";

#[test]
fn ten_thousand_seeds_give_valid_nets_inside_their_budgets() {
    // Shapes and budgets vary with the seed too (drawn from another stream); the budgets are tight enough that most
    // first draws miss them, so resampling and width scaling both run.
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let (mut scaled, mut resampled) = (0, 0);
    for seed in 0..10_000u64 {
        let input: usize = [32, 64, 100, 128, 224][rng.random_range(0..5)];
        // From the deepest possible down by three: the head ends at most 8x8 pixels, so
        // every budget below is reachable (infeasible ones: the next test).
        let deepest = input.ilog2() as usize;
        let groups = rng.random_range(deepest - 3..=deepest);
        let max_gmacs = [0.3, 2.0, 10.0, 40.0][rng.random_range(0..4)] * (input * input) as f64 / (224.0 * 224.0);
        let max_params = [5_000_000u64, 20_000_000, 100_000_000][rng.random_range(0..3)];
        let spec = format!(
            "synnet:seed={seed},input={input},groups={groups},classes=100,mix={MIX},se=0.2,max_gmacs={max_gmacs},max_params={max_params}"
        );
        let net = source::load(&spec, None).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let totals = analyze(&net, 1, Dtype::F32).totals;
        assert!(totals.macs as f64 <= max_gmacs * 1e9, "{spec}: {} MACs", totals.macs);
        assert!(totals.params <= max_params, "{spec}: {} params", totals.params);
        assert_eq!(net.output_shapes()[0].0, vec![100], "{spec}");
        let pools =
            net.nodes.iter().filter(|n| matches!(n.op, Op::MaxPool2d(_)) && n.name.matches('.').count() == 1).count();
        assert_eq!(pools, groups, "{spec}");
        let generator = net.generator.as_ref().unwrap();
        assert_eq!(generator["macs"], totals.macs, "{spec}");
        assert_eq!(generator["params"], totals.params, "{spec}");
        if generator["channel_scale"].as_f64().unwrap() < 1.0 {
            scaled += 1;
        } else if generator["draws"].as_u64().unwrap() > 1 {
            resampled += 1;
        }
    }
    // Each path runs often: kept as drawn, kept after resampling, scaled down.
    let first = 10_000 - scaled - resampled;
    assert!(first > 500 && scaled > 500 && resampled > 500, "first {first}, resampled {resampled}, scaled {scaled}");
}

#[test]
fn a_budget_nothing_can_meet_is_an_error_not_a_net() {
    let e = source::load("synnet:seed=1,max_params=1000", None).unwrap_err().to_string();
    assert!(e.contains("cannot be met") && e.contains("channels_min=2") && e.contains("max_params=1000"), "{e}");
}

/// Output widths and kernel sizes of every conv, by group (1-based), in plain nets.
fn plain_layers(params: &str, nets: u64) -> Vec<Vec<(usize, usize)>> {
    let mut by_group = vec![Vec::new(); 6];
    for seed in 0..nets {
        let net = source::load(&format!("synnet:seed={seed}{params}"), None).unwrap();
        for node in &net.nodes {
            if let Op::Conv2d(c) = &node.op {
                let group: usize = node.name["group".len()..node.name.find('.').unwrap()].parse().unwrap();
                by_group[group - 1].push((c.kernel[0], c.out_channels));
            }
        }
    }
    by_group
}

/// Pearson's chi-square statistic of `counts` against `probabilities`.
fn chi_square(counts: &[u64], probabilities: &[f64]) -> f64 {
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .zip(probabilities)
        .map(|(&o, &p)| {
            let e = p * n as f64;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

/// Upper tail of the chi-square distribution with 4 degrees of freedom: e^(-x/2) (1 + x/2).
fn chi_square_4_p_value(x: f64) -> f64 {
    (-x / 2.0).exp() * (1.0 + x / 2.0)
}

#[test]
fn kernel_sizes_follow_their_probabilities_chi_square() {
    let p = Params::default();
    let probabilities: Vec<f64> = p.kernels.iter().map(|(_, w)| *w).collect();
    assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    let layers = plain_layers("", 300);
    let mut counts = [0u64; 5];
    for &(k, _) in layers.iter().flatten() {
        counts[k - 1] += 1;
    }
    let n: u64 = counts.iter().sum();
    assert!(n > 15_000, "{n}");
    // Significance 0.01 (the samples are fixed by their seeds, so the outcome is too).
    let x = chi_square(&counts, &probabilities);
    assert!(chi_square_4_p_value(x) > 0.01, "chi2 = {x:.2}, counts {counts:?}");
    // The same test rejects a sampler that moved 2% of the mass from 3x3 to 5x5.
    let wrong = [3.0 / 62.0, 3.0 / 62.0, 34.0 / 62.0 - 0.02, 3.0 / 62.0, 19.0 / 62.0 + 0.02];
    let x_wrong = chi_square(&counts, &wrong);
    assert!(chi_square_4_p_value(x_wrong) < 0.01, "chi2 = {x_wrong:.2}");

    // Configured probabilities are followed too, not only the defaults.
    let layers = plain_layers(",kernels=1:0.2,3:0.3,7:0.5", 100);
    let mut counts = [0u64; 3];
    for &(k, _) in layers.iter().flatten() {
        counts[[1, 3, 7].iter().position(|&x| x == k).unwrap()] += 1;
    }
    // 2 degrees of freedom: p = e^(-x/2); significance 0.01.
    let x = chi_square(&counts, &[0.2, 0.3, 0.5]);
    assert!((-x / 2.0).exp() > 0.01, "chi2 = {x:.2}, counts {counts:?}");
}

/// The standard normal CDF (Abramowitz and Stegun 7.1.26, error < 1.5e-7).
fn phi(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Kolmogorov-Smirnov distance between the widths and round(exp(N(mu, sigma))) clipped to
/// [lo, hi], whose CDF at n (lo <= n < hi) is Phi((ln(n + 0.5) - mu) / sigma). For a
/// discrete law the sup is taken on both sides of every atom.
fn ks_distance(widths: &[usize], mu: f64, sigma: f64, lo: usize, hi: usize) -> f64 {
    let cdf = |n: usize| {
        if n < lo {
            0.0
        } else if n >= hi {
            1.0
        } else {
            phi(((n as f64 + 0.5).ln() - mu) / sigma)
        }
    };
    let mut sorted = widths.to_vec();
    sorted.sort_unstable();
    let total = sorted.len() as f64;
    let mut d: f64 = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let v = sorted[i];
        let below = i as f64 / total;
        while i < sorted.len() && sorted[i] == v {
            i += 1;
        }
        let at = i as f64 / total;
        d = d.max((at - cdf(v)).abs()).max((below - cdf(v - 1)).abs());
    }
    d
}

#[test]
fn log_widths_follow_their_normal_kolmogorov_smirnov() {
    let p = Params::default();
    let layers = plain_layers("", 300);
    // Significance 0.01 over the six groups (Bonferroni: 0.01/6 each); the asymptotic
    // critical value sqrt(-ln(alpha/2)/2)/sqrt(n) is conservative for a discrete law.
    let alpha = 0.01 / 6.0;
    let c_alpha = (-(alpha / 2.0_f64).ln() / 2.0).sqrt();
    for (g, layers) in layers.iter().enumerate() {
        let widths: Vec<usize> = layers.iter().map(|&(_, c)| c).collect();
        let critical = c_alpha / (widths.len() as f64).sqrt();
        let mu = p.channels_mu_of_group(g + 1);
        let d = ks_distance(&widths, mu, p.channels_sigma, p.channels_min, p.channels_max);
        assert!(d < critical, "group {}: D = {d:.4} >= {critical:.4} (n = {})", g + 1, widths.len());
        // A sampler off by 0.2 in the log mean or 25% in sigma fails the same test.
        let shifted = ks_distance(&widths, mu + 0.2, p.channels_sigma, p.channels_min, p.channels_max);
        assert!(shifted > critical, "group {}: shifted mean not rejected, D = {shifted:.4}", g + 1);
        let wider = ks_distance(&widths, mu, p.channels_sigma * 1.25, p.channels_min, p.channels_max);
        assert!(wider > critical, "group {}: wider sigma not rejected, D = {wider:.4}", g + 1);
    }
    // Configured parameters are followed: no slope, a narrow spread.
    let layers = plain_layers(",channels_mu=4,channels_slope=0,channels_sigma=0.5", 100);
    let widths: Vec<usize> = layers.iter().flatten().map(|&(_, c)| c).collect();
    let d = ks_distance(&widths, 4.0, 0.5, 2, 1024);
    assert!(d < c_alpha / (widths.len() as f64).sqrt(), "D = {d:.4}");
}

#[test]
fn layers_per_group_have_the_configured_mean_and_spread() {
    let p = Params::default();
    let layers = plain_layers("", 300);
    let counts: Vec<f64> = (0..300u64)
        .flat_map(|seed| {
            let net = source::load(&format!("synnet:seed={seed}"), None).unwrap();
            (1..=6).map(move |g| convs_in_group(&net, g) as f64).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(counts.iter().sum::<f64>() as usize, layers.iter().map(Vec::len).sum::<usize>());
    let n = counts.len() as f64;
    let mean = counts.iter().sum::<f64>() / n;
    let sd = (counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    // 1800 group counts: the standard error of the mean is 3.98/sqrt(1800) = 0.094, so
    // +-0.35 is beyond 3.5 standard errors (clipping at 1 moves the mean by < 0.01).
    assert!((mean - p.layers_mean).abs() < 0.35, "mean {mean}");
    assert!((sd - p.layers_sd).abs() < 0.3, "sd {sd}");
}

fn convs_in_group(net: &Net, g: usize) -> usize {
    let prefix = format!("group{g}.");
    net.nodes.iter().filter(|n| n.name.starts_with(&prefix) && matches!(n.op, Op::Conv2d(_))).count()
}

#[test]
fn kernel_sizes_never_grow_within_a_group() {
    for seed in 0..50 {
        let net = source::load(&format!("synnet:seed={seed},mix={MIX}"), None).unwrap();
        for g in 1..=6 {
            // The sampled layers' kernels: plain convs and every block's largest kernel.
            let prefix = format!("group{g}.");
            let mut layer_kernels: Vec<(String, usize)> = Vec::new();
            for n in net.nodes.iter().filter(|n| n.name.starts_with(&prefix)) {
                let Op::Conv2d(c) = &n.op else { continue };
                let rest = &n.name[prefix.len()..];
                let layer = if rest.starts_with("conv") {
                    rest.to_string()
                } else {
                    rest.split('.').next().unwrap().to_string()
                };
                match layer_kernels.last_mut() {
                    Some((name, k)) if *name == layer => *k = (*k).max(c.kernel[0]),
                    _ => layer_kernels.push((layer, c.kernel[0])),
                }
            }
            let layer_kernels: Vec<(String, usize)> =
                layer_kernels.into_iter().filter(|(name, _)| !name.starts_with("se")).collect();
            assert!(layer_kernels.windows(2).all(|w| w[0].1 >= w[1].1), "seed {seed} group {g}: {layer_kernels:?}");
        }
    }
}

#[test]
fn the_same_spec_gives_the_same_file_and_records_how() {
    let spec = format!("synnet:seed=7,mix={MIX},se=0.25,max_gmacs=3");
    let a = format::to_string(&source::load(&spec, None).unwrap());
    let b = format::to_string(&source::load(&spec, None).unwrap());
    assert_eq!(a, b);
    let other =
        format::to_string(&source::load(&format!("synnet:seed=8,mix={MIX},se=0.25,max_gmacs=3"), None).unwrap());
    assert_ne!(a, other);

    let net = format::parse(&a, "net.json").unwrap();
    let generator = net.generator.clone().unwrap();
    assert_eq!(generator["generator"], "synnet");
    assert_eq!(generator["seed"], 7);
    assert_eq!(generator["parameters"]["groups"], 6);
    assert_eq!(generator["parameters"]["channels"]["sigma"], 1.3078);
    assert_eq!(generator["parameters"]["mix"]["inception"], 0.1);
    assert_eq!(generator["parameters"]["max_gmacs"], 3.0);
    // The recorded spec (every parameter resolved) rebuilds the file byte for byte, and
    // defaults written out or left implicit are the same net.
    let recorded = generator["spec"].as_str().unwrap();
    assert!(recorded.starts_with("synnet:seed=7,groups=6,input=224,classes=1000,layers_mean=10.33"), "{recorded}");
    assert_eq!(format::to_string(&source::load(recorded, None).unwrap()), a);
    // The order weights are listed in does not matter.
    assert_eq!(
        format::to_string(&source::load("synnet:seed=5,mix=dense:1,plain:3,kernels=5:1,3:2", None).unwrap()),
        format::to_string(&source::load("synnet:seed=5,mix=plain:3,dense:1,kernels=3:2,5:1", None).unwrap())
    );
    assert_eq!(
        format::to_string(&source::load("synnet:seed=5", None).unwrap()),
        format::to_string(&source::load("synnet:groups=6,seed=5,input=224", None).unwrap())
    );
}

#[test]
fn bad_specs_name_the_key_and_what_is_valid() {
    let err = |s: &str| source::load(s, None).unwrap_err().to_string();
    let e = err("synnet:groups=8,input=224");
    assert!(e.contains("groups=8 at input=224") && e.contains("give groups from 1 to 7"), "{e}");
    let e = err("synnet:mix=plain:1,resnet:1");
    assert!(
        e.contains("unknown block `resnet`; blocks: plain, bottleneck, inception, dense, separable, inverted"),
        "{e}"
    );
    let e = err("synnet:mix=plain:-1");
    assert!(e.contains("the weight must be a number >= 0"), "{e}");
    let e = err("synnet:kernels=3:0,5:0");
    assert!(e.contains("at least one positive weight"), "{e}");
    let e = err("synnet:kernels=0:1");
    assert!(e.contains("give sizes from 1 to 15"), "{e}");
    let e = err("synnet:se=2");
    assert!(e.contains("se=2: give a number from 0 to 1"), "{e}");
    let e = err("synnet:seed=-1");
    assert!(e.contains("seed=-1: give an integer from 0 to"), "{e}");
    let e = err("synnet:filters=3");
    assert!(e.contains("unknown key `filters`; synnet takes seed, groups, input"), "{e}");
    let e = err("synnet:mix=plain:1,dense:1,plain:2");
    assert!(e.contains("mix: `plain` is given twice"), "{e}");
    let e = err("synnet:layers_min=5,layers_max=3");
    assert!(e.contains("layers_max=3 is below layers_min=5"), "{e}");
}
