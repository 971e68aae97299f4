//! Numbers for people: three significant digits, thousands separators, a dash for nothing.

pub use crate::cli::text::thousands;

/// 3 significant digits: 2.06, 37.2, 412, 1,234 (no decimals from 1,000 up).
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    match a {
        a if a >= 999.5 => {
            let s = thousands(a.round() as u64);
            if v < 0.0 {
                format!("−{s}")
            } else {
                s
            }
        }
        a if a >= 99.95 => format!("{v:.0}"),
        a if a >= 9.995 => format!("{v:.1}"),
        a if a >= 0.9995 => format!("{v:.2}"),
        0.0 => "0".into(),
        a => {
            let decimals = (2.0 - a.log10().floor()) as usize;
            format!("{v:.decimals$}")
        }
    }
}

pub fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_else(|| "—".into())
}

/// A raw number for CSV: full precision, empty for nothing.
pub fn raw(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map(|x| x.to_string()).unwrap_or_default()
}

/// Tick labels on log axes: 1, 2, 5, 10, 200, 5k, 20M, 0.5.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    let (scaled, unit) = match a {
        a if a >= 1e12 => (v / 1e12, "T"),
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e4 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = if scaled.fract().abs() < 1e-9 {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 1.0 {
        format!("{scaled:.1}").trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        let decimals = (-scaled.abs().log10().floor()).max(1.0) as usize;
        format!("{scaled:.decimals$}")
    };
    format!("{text}{unit}")
}

/// Unix seconds as "2026-11-23 15:04 UTC".
pub fn utc(unix_s: f64) -> String {
    let id = crate::sweep::store::run_id("x", unix_s);
    // run_id: 2026-11-23T15-04-05Z_x
    let (date, time) = id.split_once('T').unwrap_or((&id, ""));
    format!("{date} {} UTC", time.get(..5).unwrap_or("").replace('-', ":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_three_significant_digits() {
        assert_eq!(num(2.0559), "2.06");
        assert_eq!(num(37.16), "37.2");
        assert_eq!(num(412.4), "412");
        assert_eq!(num(12_345.6), "12,346");
        assert_eq!(num(0.012_345), "0.0123");
        assert_eq!(num(f64::NAN), "—");
        assert_eq!(tick(20_000.0), "20k");
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(0.02), "0.02");
        assert_eq!(tick(2e9), "2G");
        assert_eq!(utc(1_795_446_245.0), "2026-11-23 15:04 UTC");
    }
}
