//! `family:key=value,...`: parsing, typed lookups, and errors that name the key and what
//! would be valid.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub text: String,
    pub family: String,
    values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub spec: String,
    pub message: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "generator spec `{}`: {}", self.spec, self.message)
    }
}

impl std::error::Error for SpecError {}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, SpecError> {
        let err = |message: String| SpecError { spec: text.to_string(), message };
        let (family, rest) = text.split_once(':').ok_or_else(|| err("expected `family:key=value,...`".into()))?;
        let mut values = BTreeMap::new();
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| err(format!("`{part}`: expected key=value")))?;
            if values.insert(k.trim().to_string(), v.trim().to_string()).is_some() {
                return Err(err(format!("`{}` is given twice", k.trim())));
            }
        }
        Ok(Spec { text: text.to_string(), family: family.trim().to_string(), values })
    }

    pub fn error(&self, message: impl Into<String>) -> SpecError {
        SpecError { spec: self.text.clone(), message: message.into() }
    }

    /// Keys outside `known` are an error naming the valid ones.
    pub fn only(&self, known: &[&str]) -> Result<(), SpecError> {
        match self.values.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(self.error(format!("unknown key `{k}`; {} takes {}", self.family, known.join(", ")))),
            None => Ok(()),
        }
    }

    /// An integer in `range`, or `default` when absent.
    pub fn int(&self, key: &str, default: usize, range: std::ops::RangeInclusive<usize>) -> Result<usize, SpecError> {
        let Some(v) = self.values.get(key) else { return Ok(default) };
        match v.parse::<usize>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(self.error(format!("{key}={v}: give an integer from {} to {}", range.start(), range.end()))),
        }
    }

    /// One of `choices` (the first is the default).
    pub fn choice<'a>(&self, key: &str, choices: &[&'a str]) -> Result<&'a str, SpecError> {
        let Some(v) = self.values.get(key) else { return Ok(choices[0]) };
        choices
            .iter()
            .find(|c| **c == v)
            .copied()
            .ok_or_else(|| self.error(format!("{key}={v}: give one of {}", choices.join(", "))))
    }
}
