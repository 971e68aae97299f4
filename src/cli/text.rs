//! Plain-text output: aligned tables and human-readable numbers.

/// An aligned text table; numeric-looking cells are right-aligned.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: ToString>(headers: &[S]) -> Self {
        Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                width[i] = width[i].max(cell.chars().count());
            }
        }
        let numeric: Vec<bool> = (0..columns)
            .map(|i| !self.rows.is_empty() && self.rows.iter().all(|r| r.get(i).is_none_or(|c| looks_numeric(c))))
            .collect();
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, w) in width.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = w - cell.chars().count();
                if i > 0 {
                    out.push_str("  ");
                }
                if numeric[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    if i + 1 < columns {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(&self.headers);
        out.push('\n');
        out.push_str(&"-".repeat(width.iter().sum::<usize>() + 2 * (columns.saturating_sub(1))));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}

fn looks_numeric(cell: &str) -> bool {
    let c = cell.trim();
    c.is_empty()
        || c == "-"
        || c.chars().next().is_some_and(|ch| ch.is_ascii_digit())
            && c.chars().all(|ch| ch.is_ascii_digit() || ",.%x GMkKiB".contains(ch))
}

/// 25557032 -> "25,557,032"
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// 4089184256 -> "4.089 G"; keeps 4 significant digits.
pub fn si(value: f64) -> String {
    let (scaled, unit) = match value.abs() {
        v if v >= 1e12 => (value / 1e12, "T"),
        v if v >= 1e9 => (value / 1e9, "G"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let decimals = if scaled.abs() >= 100.0 {
        1
    } else if scaled.abs() >= 10.0 {
        2
    } else {
        3
    };
    if unit.is_empty() {
        format!("{}", value.round())
    } else {
        format!("{scaled:.decimals$} {unit}")
    }
}

/// Bytes in binary units: "97.49 MiB".
pub fn bytes(n: u64) -> String {
    let v = n as f64;
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", v / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.2} MiB", v / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.2} KiB", v / 1024.0),
        _ => format!("{n} B"),
    }
}

pub fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(25_557_032), "25,557,032");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(si(4_089_184_256.0), "4.089 G");
        assert_eq!(si(118_013_952.0), "118.0 M");
        assert_eq!(si(512.0), "512");
        assert_eq!(bytes(102_228_128), "97.49 MiB");
    }

    #[test]
    fn tables_align_numbers_right() {
        let mut t = Table::new(&["name", "params"]);
        t.row(vec!["a".into(), "1,000".into()]);
        t.row(vec!["longer".into(), "5".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "a        1,000");
        assert_eq!(lines[3], "longer       5");
    }
}
