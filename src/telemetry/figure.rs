//! A figure that was measured, or the reason it could not be: never a fake 0.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A measured value, or why there is none. In JSON: the bare value, or
/// `{"not_available": "<reason>"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Figure<T> {
    Value(T),
    NotAvailable { not_available: String },
}

impl<T> Figure<T> {
    pub fn na(reason: impl Into<String>) -> Self {
        Figure::NotAvailable { not_available: reason.into() }
    }

    pub fn value(&self) -> Option<&T> {
        match self {
            Figure::Value(v) => Some(v),
            Figure::NotAvailable { .. } => None,
        }
    }

    /// The reason it is missing, if it is.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Figure::Value(_) => None,
            Figure::NotAvailable { not_available } => Some(not_available),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Figure<U> {
        match self {
            Figure::Value(v) => Figure::Value(f(v)),
            Figure::NotAvailable { not_available } => Figure::NotAvailable { not_available },
        }
    }

    /// Combine with a second figure; the first missing one gives the reason.
    pub fn zip<U>(self, other: Figure<U>) -> Figure<(T, U)> {
        match (self, other) {
            (Figure::Value(a), Figure::Value(b)) => Figure::Value((a, b)),
            (Figure::NotAvailable { not_available }, _) | (_, Figure::NotAvailable { not_available }) => {
                Figure::NotAvailable { not_available }
            }
        }
    }

    pub fn as_ref(&self) -> Figure<&T> {
        match self {
            Figure::Value(v) => Figure::Value(v),
            Figure::NotAvailable { not_available } => Figure::na(not_available.clone()),
        }
    }

    /// Text for a table: the value formatted by `f`, or "not available: <reason>".
    pub fn show(&self, f: impl FnOnce(&T) -> String) -> String {
        match self {
            Figure::Value(v) => f(v),
            Figure::NotAvailable { not_available } => format!("not available: {not_available}"),
        }
    }
}

impl<T, E: fmt::Display> From<Result<T, E>> for Figure<T> {
    fn from(r: Result<T, E>) -> Self {
        match r {
            Ok(v) => Figure::Value(v),
            Err(e) => Figure::na(e.to_string()),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Figure<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Figure::Value(v) => v.fmt(f),
            Figure::NotAvailable { not_available } => write!(f, "not available: {not_available}"),
        }
    }
}

/// Why a sampler or a device cannot be used; shows as "not available: <reason>".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAvailable(pub String);

impl fmt::Display for NotAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not available: {}", self.0)
    }
}

impl std::error::Error for NotAvailable {}

impl<T> From<NotAvailable> for Figure<T> {
    fn from(e: NotAvailable) -> Self {
        Figure::na(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_values_bare_and_reasons_labelled() {
        let v: Figure<f64> = Figure::Value(2.5);
        let n: Figure<f64> = Figure::na("no RAPL");
        assert_eq!(serde_json::to_string(&v).unwrap(), "2.5");
        assert_eq!(serde_json::to_string(&n).unwrap(), r#"{"not_available":"no RAPL"}"#);
        assert_eq!(serde_json::from_str::<Figure<f64>>("2.5").unwrap(), v);
        assert_eq!(serde_json::from_str::<Figure<f64>>(r#"{"not_available":"no RAPL"}"#).unwrap(), n);
        // a string value that reads like a reason stays a value
        let s: Figure<String> = Figure::Value("not available".into());
        assert_eq!(serde_json::from_str::<Figure<String>>(&serde_json::to_string(&s).unwrap()).unwrap(), s);
        assert_eq!(n.to_string(), "not available: no RAPL");
    }
}
