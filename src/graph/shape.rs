//! Per-sample tensor shapes: `[C, H, W]` or `[F]`; the batch is symbolic.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn chw(c: usize, h: usize, w: usize) -> Shape {
        Shape(vec![c, h, w])
    }

    pub fn flat(features: usize) -> Shape {
        Shape(vec![features])
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Elements per sample.
    pub fn elements(&self) -> u64 {
        self.0.iter().map(|&d| d as u64).product()
    }

    /// The channel count (`C` of `[C, H, W]`, `F` of `[F]`).
    pub fn channels(&self) -> usize {
        self.0.first().copied().unwrap_or(0)
    }

    /// `[H, W]` of a feature map, `None` for flat features.
    pub fn hw(&self) -> Option<[usize; 2]> {
        match self.0.as_slice() {
            [_, h, w] => Some([*h, *w]),
            _ => None,
        }
    }

    pub fn is_feature_map(&self) -> bool {
        self.rank() == 3
    }

    /// Parse `3x224x224`, `3,224,224` or `540`.
    pub fn parse(text: &str) -> Result<Shape, String> {
        let dims: Result<Vec<usize>, _> =
            text.split(['x', 'X', ',']).map(|part| part.trim().parse::<usize>()).collect();
        match dims {
            Ok(dims) if (dims.len() == 1 || dims.len() == 3) && dims.iter().all(|&d| d > 0) => Ok(Shape(dims)),
            _ => Err(format!(
                "`{text}` is not an input shape: expected CxHxW such as 3x224x224, or a feature count such as 540"
            )),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        write!(f, "{}", parts.join("x"))
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Shape(dims.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_shapes() {
        assert_eq!(Shape::parse("3x320x320").unwrap(), Shape::chw(3, 320, 320));
        assert_eq!(Shape::parse("540").unwrap(), Shape::flat(540));
        assert_eq!(Shape::chw(3, 224, 224).to_string(), "3x224x224");
        assert!(Shape::parse("3x0x2").is_err());
        assert!(Shape::parse("3x224").is_err());
        assert!(Shape::parse("abc").unwrap_err().contains("3x224x224"));
        assert_eq!(Shape::chw(3, 224, 224).elements(), 150_528);
    }
}
