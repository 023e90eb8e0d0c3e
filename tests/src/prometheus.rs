//! Reading Prometheus text exposition (what Envoy's `/stats/prometheus` serves): samples by
//! metric name and label set, so tests compare exact counts per series.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};

/// Label name → value, sorted.
pub type Labels = BTreeMap<String, String>;

/// Every sample of one exposition, keyed by metric name then label set.
#[derive(Debug, Clone, Default)]
pub struct Samples(BTreeMap<String, BTreeMap<Labels, f64>>);

impl Samples {
    /// Parses the text format (comments and blank lines skipped; a malformed line is an
    /// error naming it).
    pub fn parse(text: &str) -> Result<Samples> {
        let mut out: BTreeMap<String, BTreeMap<Labels, f64>> = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .with_context(|| format!("no value on line {line:?}"))?;
            let value: f64 = value
                .parse()
                .with_context(|| format!("bad value on line {line:?}"))?;
            let (name, labels) = match series.split_once('{') {
                None => (series, Labels::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .with_context(|| format!("unclosed labels on line {line:?}"))?;
                    (
                        name,
                        parse_labels(body).with_context(|| format!("line {line:?}"))?,
                    )
                }
            };
            out.entry(name.to_owned())
                .or_default()
                .insert(labels, value);
        }
        Ok(Samples(out))
    }

    /// The samples of `metric`, by label set (empty when there are none).
    pub fn series(&self, metric: &str) -> BTreeMap<Labels, f64> {
        self.0.get(metric).cloned().unwrap_or_default()
    }

    /// The samples of `metric` as `(values of the labels named in keys, value)`, dropping
    /// other labels (such as a histogram's `le`).
    pub fn by(&self, metric: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
        self.series(metric)
            .into_iter()
            .map(|(labels, v)| {
                let key = keys
                    .iter()
                    .map(|k| labels.get(*k).cloned().unwrap_or_default())
                    .collect();
                (key, v)
            })
            .collect()
    }

    /// Metric names that start with `prefix`.
    pub fn names(&self, prefix: &str) -> Vec<String> {
        self.0
            .keys()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// `a="x",b="y\"z"` → labels (Prometheus escapes `\\`, `\"` and `\n` in values).
fn parse_labels(body: &str) -> Result<Labels> {
    let mut labels = Labels::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").context("label without =\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => bail!("dangling escape"),
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                other => value.push(other),
            }
        }
        let end = end.context("unterminated label value")?;
        labels.insert(name.trim_start_matches(',').to_owned(), value);
        rest = after.get(end + 1..).unwrap_or_default();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_series_with_escaped_labels() {
        let text = "# TYPE x counter\nx{env=\"Prod\",tool=\"a.b\\\"c\"} 3\ny 1.5\nh_bucket{le=\"+Inf\",env=\"P\"} 2\n";
        let s = Samples::parse(text).unwrap();
        let x = s.by("x", &["env", "tool"]);
        assert_eq!(x[&vec!["Prod".to_owned(), "a.b\"c".to_owned()]], 3.0);
        assert_eq!(s.series("y")[&Labels::new()], 1.5);
        assert_eq!(s.series("h_bucket").len(), 1);
        assert!(Samples::parse("x{a=\"b} 1").is_err());
    }
}
