//! Small blocks the families share: conv-bn-activation, classifier heads, squeeze-excite.

use crate::graph::{conv, ConvSpec, NetBuilder, Op, T};

/// Convolution without bias, then batch norm (eps 1e-5).
pub fn conv_bn(g: &mut NetBuilder, x: T, spec: ConvSpec) -> T {
    let x = g.conv(x, spec.no_bias());
    g.bn(x)
}

/// Convolution without bias, batch norm, ReLU.
pub fn conv_bn_relu(g: &mut NetBuilder, x: T, spec: ConvSpec) -> T {
    let x = conv_bn(g, x, spec);
    g.relu(x)
}

/// Convolution without bias, batch norm with `eps`, then `act`.
pub fn conv_bn_act(g: &mut NetBuilder, x: T, spec: ConvSpec, eps: f64, act: &Op) -> T {
    let x = g.conv(x, spec.no_bias());
    let x = g.bn_eps(x, eps);
    g.act(x, act)
}

/// Convolution with bias, then ReLU (the pre-batch-norm nets: AlexNet, VGG, GoogLeNet).
pub fn conv_relu(g: &mut NetBuilder, x: T, spec: ConvSpec) -> T {
    let x = g.conv(x, spec);
    g.relu(x)
}

/// Global average pool, flatten, fully connected (the torchvision head).
pub fn classifier(g: &mut NetBuilder, x: T, classes: usize) -> T {
    let x = g.global_avg_pool(x);
    let x = g.flatten(x);
    g.named("fc").linear(x, classes)
}

/// Squeeze-and-excitation: global pool, 1x1 conv down to `reduced` channels, `act`,
/// 1x1 conv back up, `gate`, then scale the input channel-wise.
pub fn squeeze_excite(g: &mut NetBuilder, x: T, reduced: usize, act: &Op, gate: &Op) -> T {
    let channels = g.channels(x);
    g.scope("se", |g| {
        let s = g.global_avg_pool(x);
        let s = g.conv(s, conv(reduced, 1));
        let s = g.act(s, act);
        let s = g.conv(s, conv(channels, 1));
        let s = g.act(s, gate);
        g.mul(x, s)
    })
}

/// Round `v` to a multiple of `divisor`, not going below 90% of `v` (the MobileNet /
/// EfficientNet `_make_divisible`).
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new = ((v + d / 2.0) / d).floor() as usize * divisor;
    new = new.max(divisor);
    if (new as f64) < 0.9 * v {
        new += divisor;
    }
    new
}

#[cfg(test)]
mod tests {
    use super::make_divisible;

    #[test]
    fn make_divisible_matches_torchvision() {
        assert_eq!(make_divisible(32.0 * 1.4, 8), 48);
        assert_eq!(make_divisible(16.0 * 1.4, 8), 24);
        assert_eq!(make_divisible(1280.0 * 1.4, 8), 1792);
        assert_eq!(make_divisible(96.0 / 4.0, 8), 24);
        assert_eq!(make_divisible(3.0, 8), 8);
    }
}
