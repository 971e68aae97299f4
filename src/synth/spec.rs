//! `family:key=value,...`: parsing, typed lookups, and errors that name the key and what
//! would be valid. A part without `=` continues the previous value, so list values keep
//! their commas: `mix=plain:0.7,bottleneck:0.3,se=0.25` gives `mix` = `plain:0.7,bottleneck:0.3`.

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
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        let mut last: Option<String> = None;
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                match last.as_ref().and_then(|k| values.get_mut(k)) {
                    Some(previous) => {
                        previous.push(',');
                        previous.push_str(part);
                        continue;
                    }
                    None => return Err(err(format!("`{part}`: expected key=value"))),
                }
            };
            if values.insert(k.trim().to_string(), v.trim().to_string()).is_some() {
                return Err(err(format!("`{}` is given twice", k.trim())));
            }
            last = Some(k.trim().to_string());
        }
        Ok(Spec { text: text.to_string(), family: family.trim().to_string(), values })
    }

    /// A spec from already separated values (a spec file, command-line flags); `origin`
    /// names it in errors.
    pub fn from_values(origin: &str, family: &str, values: BTreeMap<String, String>) -> Spec {
        Spec { text: origin.to_string(), family: family.to_string(), values }
    }

    /// The raw value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
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

    /// A 64-bit unsigned integer (a seed), or `default` when absent.
    pub fn u64(&self, key: &str, default: u64) -> Result<u64, SpecError> {
        let Some(v) = self.values.get(key) else { return Ok(default) };
        v.parse::<u64>().map_err(|_| self.error(format!("{key}={v}: give an integer from 0 to {}", u64::MAX)))
    }

    /// A finite number in `range`, or `default` when absent (`None` default: optional).
    pub fn float(&self, key: &str, default: f64, range: std::ops::RangeInclusive<f64>) -> Result<f64, SpecError> {
        Ok(self.opt_float(key, range)?.unwrap_or(default))
    }

    pub fn opt_float(&self, key: &str, range: std::ops::RangeInclusive<f64>) -> Result<Option<f64>, SpecError> {
        let Some(v) = self.values.get(key) else { return Ok(None) };
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() && range.contains(&x) => Ok(Some(x)),
            _ => Err(self.error(format!("{key}={v}: give a number from {} to {}", range.start(), range.end()))),
        }
    }

    /// `name:weight,name:weight,...` with each name parsed by `item` (which says what is
    /// valid on error) and weights non-negative, not all zero; `None` when absent.
    pub fn weights<X>(
        &self,
        key: &str,
        item: impl Fn(&str) -> Result<X, String>,
    ) -> Result<Option<Vec<(X, f64)>>, SpecError> {
        let Some(v) = self.values.get(key) else { return Ok(None) };
        let mut out = Vec::new();
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part
                .split_once(':')
                .ok_or_else(|| self.error(format!("{key}: `{part}`: expected name:weight, e.g. {key}=a:0.7,b:0.3")))?;
            let x = item(name.trim()).map_err(|e| self.error(format!("{key}: {e}")))?;
            let w = match w.trim().parse::<f64>() {
                Ok(w) if w.is_finite() && w >= 0.0 => w,
                _ => return Err(self.error(format!("{key}: `{part}`: the weight must be a number >= 0"))),
            };
            out.push((x, w));
        }
        if !out.iter().any(|(_, w)| *w > 0.0) {
            return Err(self.error(format!("{key}={v}: give at least one positive weight")));
        }
        Ok(Some(out))
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
